"""Business services: the rules every entry point (web, API, FastAGI, CLI) shares."""
