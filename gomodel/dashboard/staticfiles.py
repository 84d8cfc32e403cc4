"""Static files (admin and dashboard) served by the ASGI app itself: `make run` runs no collectstatic.

WhiteNoise (with WHITENOISE_USE_FINDERS) finds the files in the apps' static folders at start-up and
serves them with caching headers. WhiteNoise 6 speaks WSGI only: its file responses are synchronous
iterators, which Django's ASGI handler consumes with a warning on every file. Under ASGI the file is
read in a worker thread instead and handed over as an asynchronous iterator, as Django's own
ASGIStaticFilesHandler does. The /v1 fast path never reaches this (gomodel/asgi.py).
"""

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from whitenoise.middleware import WhiteNoiseMiddleware


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    @staticmethod
    def serve(static_file, request):
        response = WhiteNoiseMiddleware.serve(static_file, request)
        if isinstance(request, ASGIRequest) and response.streaming and not response.is_async:
            chunks = response.streaming_content

            async def read_in_a_thread():
                # asgiref's ParamSpec typing cannot bind list's overloaded constructor.
                for part in await sync_to_async(list, thread_sensitive=False)(chunks):  # type: ignore[call-arg,var-annotated]
                    yield part

            response.streaming_content = read_in_a_thread()
        return response
