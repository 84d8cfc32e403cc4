"""What one upstream answer may cost the gateway's own client, besides the operator's settings
(UPSTREAM_MAX_BODY_BYTES, UPSTREAM_MAX_SSE_EVENT_BYTES, the timeouts): fixed bounds, each checked as bytes
arrive, never only when a unit (a header, a body, an event) completes."""

MAX_HEAD_BYTES = 64 * 1024  # an answer's status line and headers, informational answers before it included
MAX_HEADERS = 1000  # header lines in one answer (Node's default count; providers send ~20-40)
PARSE_SLICE = 64 * 1024  # bytes parsed per event-loop turn; a larger read waits its turn in slices
STREAM_SLICE = 32 * 1024  # the most a stream hands its reader at once (an SSE decoder's work per call)
INFLATE_SLICE = 64 * 1024  # decompressed bytes produced per zlib call (`max_length`): a bomb expands no faster
YIELD_EVERY = 1024 * 1024  # a reader producing this much without waiting lets the event loop run
STREAM_HIGH_WATER = 256 * 1024  # a stream's bytes read but not consumed: stop reading the socket above this
KEEPALIVE_SECONDS = 60.0  # an idle pooled connection older than this is closed, not reused
MAX_IDLE_PER_ORIGIN = 256
