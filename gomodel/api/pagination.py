from rest_framework.pagination import LimitOffsetPagination


class Pagination(LimitOffsetPagination):
    """`?limit=&offset=`; the answer is DRF's usual {count, next, previous, results}. A malformed
    limit or offset falls back to the default rather than failing."""

    default_limit = 50
    max_limit = 500
