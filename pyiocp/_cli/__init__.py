"""The command line's tools, one module each; pyiocp.__main__ puts them together."""
