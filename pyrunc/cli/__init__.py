"""The command line: main.py dispatches to one module per verb (cli -> library -> linux)."""
