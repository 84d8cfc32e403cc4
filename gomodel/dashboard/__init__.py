"""The usage dashboard (/dashboard/, staff only): charts, the live feed of requests, monthly statements."""
