"""The /v1 protocols as plug-ins of the one pipeline (gomodel/gateway/pipeline/): each says only how its
calls differ — the upstream request, the reservation, how to read a whole answer, a stream writer."""
