"""Testing helpers for servers built on pyiocp, and the pytest plugin
(registered as the ``pytest11`` entry point ``pyiocp``)."""
