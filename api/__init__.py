"""Every door to citeqa: the command line (and, later, the HTTP API and the web page)."""
