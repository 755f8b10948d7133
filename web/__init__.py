"""The customer portal and the JSON API (aiohttp)."""
