"""The outer ring: the aiohttp server hosting the chat front ends, the front ends, the CLI."""
