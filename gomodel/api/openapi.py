"""GET /openapi.json: drf-spectacular's document of the management API, with the gateway's own /v1
endpoints written in by gomodel.api.openapi_v1.add_gateway_paths."""

from functools import lru_cache

from django.http import JsonResponse
from django.views.decorators.http import require_safe
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.openapi import AutoSchema

ERROR = {"$ref": "#/components/schemas/ErrorDetail"}


def _json(description: str, schema: dict) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


class ManagementAutoSchema(AutoSchema):
    """Adds the error answers every management operation can give, in DRF's usual shapes."""

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        responses.setdefault("400", _json("Invalid input (body or query string)",
                                          {"$ref": "#/components/schemas/ValidationError"}))
        responses.setdefault("401", _json("No credentials, or unknown ones", ERROR))
        responses.setdefault("403", _json("A tenant API key, or a token of a user who is not staff", ERROR))
        if "{" in self.path:
            responses.setdefault("404", _json("No such object", {"$ref": "#/components/schemas/NotFound"}))
        if self.method in ("POST", "PUT", "PATCH"):
            responses.setdefault("415", _json("The body is not application/json", ERROR))
        return dict(sorted(responses.items()))


class ManagementAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "gomodel.api.authentication.ManagementAuthentication"
    name = "ManagementAuth"
    priority = 1

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "GOMODEL_MASTER_KEY, or a staff user's API token (gm_staff_…, issued in admin; also "
                           "accepted as `Authorization: Token <token>`). Tenant API keys get 403.",
        }


@lru_cache(maxsize=1)
def openapi_document() -> dict:
    """Built once per process: it depends on the code only."""
    return SchemaGenerator().get_schema(request=None, public=True)


@require_safe
def openapi_json(request):
    return JsonResponse(openapi_document(), json_dumps_params={"ensure_ascii": False})
