"""The management API's views: each validates its input and calls one domain service of
accounting.<domain>.services (which writes the change and its audit row in one transaction), through DRF's
perform_create/perform_update hooks."""

from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.http import Http404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounting.audit.services import DomainError, do_update
from accounting.models import ApiKey, AuditEntry, ModelPrice, Tenant
from accounting.prices.services import do_create_price
from accounting.provider_configs.services import do_create_provider, do_set_provider_enabled, do_update_provider
from accounting.tenants.services import do_create_api_key, do_create_tenant, do_revoke_api_key, do_set_tenant_active
from gomodel.gateway.provider_probe import test_connection
from providers.models import ProviderConfig

from . import filters, services
from . import serializers as s
from .authentication import ManagementAuthentication, actor_name
from .permissions import HasModelPermission, IsGatewayAdmin

ID = r"[0-9]{1,18}"  # a longer number matches no route (404) rather than overflowing a bigint
ID_OR_SLUG = r"[0-9]{1,18}|[-a-zA-Z0-9_]{1,64}"


if TYPE_CHECKING:  # a mixin for the DRF viewsets below: checked as one of them
    _ViewSet = viewsets.GenericViewSet[Any]
else:
    _ViewSet = object


class ManagementView(_ViewSet):
    authentication_classes = [ManagementAuthentication]
    permission_classes = [IsGatewayAdmin, HasModelPermission]
    filter_backends = [DjangoFilterBackend]
    lookup_value_regex = ID
    action_permissions: dict = {}

    @property
    def actor(self) -> str:
        return actor_name(self.request.user)

    def query(self, serializer_class) -> dict:
        serializer = serializer_class(data=self.request.query_params.dict())
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def paginated(self, queryset, serializer_class):
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(serializer_class(page, many=True).data)

    def perform_update(self, serializer):
        serializer.instance = write(do_update, self.actor, serializer.instance, serializer.validated_data)


def write(service, *args, **kwargs):
    """Call a domain service; a rule it refuses is a 400 in DRF's usual shape."""
    try:
        return service(*args, **kwargs)
    except DomainError as exc:
        raise serializers.ValidationError(exc.errors) from None


# -- tenants ----------------------------------------------------------------------------------------

@extend_schema_view(
    list=extend_schema(summary="List tenants"),
    retrieve=extend_schema(summary="Get a tenant (by id or slug)"),
    create=extend_schema(summary="Create a tenant"),
    update=extend_schema(summary="Replace a tenant's editable fields"),
    partial_update=extend_schema(summary="Update a tenant (name, active, budgets)"),
)
@extend_schema(tags=["tenants"])
class TenantViewSet(ManagementView, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                    mixins.UpdateModelMixin, viewsets.GenericViewSet):
    """A tenant is named by its id or its slug in the URL (`/api/v1/tenants/acme/`)."""

    queryset = Tenant.objects.order_by("slug", "id")
    serializer_class = s.TenantSerializer
    filterset_class = filters.TenantFilter
    lookup_value_regex = ID_OR_SLUG
    action_permissions = {"deactivate": "change", "usage": "view", "keys": ("view", ApiKey),
                          "create_key": ("add", ApiKey)}

    def get_serializer_class(self):
        return s.TenantUpdateSerializer if self.action in ("update", "partial_update") else s.TenantSerializer

    def get_object(self):
        tenant = tenant_by_ref(self.kwargs[self.lookup_url_kwarg or self.lookup_field])
        self.check_object_permissions(self.request, tenant)
        return tenant

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        serializer.instance = write(do_create_tenant, data.pop("slug"), data.pop("name", ""),
                                    actor=self.actor, **data)

    @extend_schema(summary="Deactivate a tenant (its keys stop working at once)", request=None,
                   responses=s.TenantSerializer)
    @action(detail=True, methods=["post"])
    def deactivate(self, request, pk=None):
        tenant = do_set_tenant_active(self.actor, self.get_object(), False)
        return Response(s.TenantSerializer(tenant).data)

    @extend_schema(summary="List a tenant's API keys", responses=s.ApiKeySerializer(many=True),
                   parameters=[OpenApiParameter("active", bool), OpenApiParameter("created_after", datetime),
                               OpenApiParameter("created_before", datetime)])
    @action(detail=True, methods=["get"], url_path="keys", filter_backends=[])
    def keys(self, request, pk=None):
        tenant = self.get_object()
        queryset = ApiKey.objects.filter(tenant=tenant).select_related("tenant").order_by("-created_at", "-id")
        found = filters.TenantKeyFilter(request.query_params, queryset=queryset)
        if not found.is_valid():
            raise serializers.ValidationError(found.errors)
        return self.paginated(found.qs, s.ApiKeySerializer)

    @extend_schema(summary="Issue an API key for this tenant (the response carries the plaintext once)",
                   request=s.TenantKeyCreateSerializer, responses={201: s.ApiKeyCreatedSerializer})
    @keys.mapping.post
    def create_key(self, request, pk=None):
        tenant = self.get_object()
        serializer = s.TenantKeyCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return issue_key(self.actor, tenant, serializer.validated_data)

    @extend_schema(summary="A tenant's usage: the same roll-ups as GET /v1/usage, for any range",
                   parameters=[s.UsageQuery], responses=s.UsageReportSerializer,
                   description="Daily rows per provider × model × key plus totals, from the roll-ups and the "
                               "events not drained yet. Without `start`/`end`: this calendar month (UTC); "
                               "with one of them: that day's month. Any span is allowed. `group_by=label|user`: "
                               "one row per label or end user; `label=name:value`, `user=…`: only those requests "
                               "(both from the stored events plus the undrained ones).")
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def usage(self, request, pk=None):
        tenant = self.get_object()
        query = self.query(s.UsageQuery)
        return Response(services.tenant_usage(tenant, query.get("start"), query.get("end"), query["view"]))


def tenant_by_ref(ref: str) -> Tenant:
    """A tenant by id or, failing that, by slug."""
    tenant = None
    if ref.isdigit() and len(ref) <= 18:
        tenant = Tenant.objects.filter(pk=int(ref)).first()
    if tenant is None:
        tenant = Tenant.objects.filter(slug=ref).first()
    if tenant is None:
        raise Http404("No tenant with this id or slug.")
    return tenant


def issue_key(actor, tenant, data):
    if not tenant.active:
        return Response({"tenant": ["This tenant is deactivated; reactivate it before issuing keys."]},
                        status=status.HTTP_400_BAD_REQUEST)
    budget = {field: data[field] for field in ("budget_usd", "budget_period", "budget_soft_percent",
                                               *s.CACHE_FIELDS) if field in data}
    key, plaintext = do_create_api_key(tenant, name=data.get("name", ""), rpm=data.get("rpm_limit"),
                                              tpm=data.get("tpm_limit"), expires_at=data.get("expires_at"),
                                              actor=actor, concurrency=data.get("concurrency_limit"),
                                              allowed_models=data.get("allowed_models"),
                                              labels=data.get("labels"), **budget)
    body = s.ApiKeySerializer(key).data
    body["key"] = plaintext
    return Response(body, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})


# -- API keys ---------------------------------------------------------------------------------------

@extend_schema_view(
    list=extend_schema(summary="List API keys (never their secrets)"),
    retrieve=extend_schema(summary="Get an API key"),
    update=extend_schema(summary="Replace a key's name, expiry and limits"),
    partial_update=extend_schema(summary="Update a key's name, expiry or limits"),
)
@extend_schema(tags=["keys"])
class ApiKeyViewSet(ManagementView, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin,
                    viewsets.GenericViewSet):
    queryset = ApiKey.objects.select_related("tenant").order_by("-created_at", "-id")
    serializer_class = s.ApiKeySerializer
    filterset_class = filters.ApiKeyFilter
    action_permissions = {"revoke": "change"}

    @extend_schema(summary="Issue an API key (the response carries the plaintext once)",
                   request=s.ApiKeyCreateSerializer, responses={201: s.ApiKeyCreatedSerializer})
    def create(self, request):
        serializer = s.ApiKeyCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        return issue_key(self.actor, data.pop("tenant"), data)

    @extend_schema(summary="Revoke a key (it stops authenticating at once)", request=None,
                   responses=s.ApiKeySerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        key = do_revoke_api_key(self.get_object(), actor=self.actor)
        return Response(s.ApiKeySerializer(key).data)


# -- provider configs -------------------------------------------------------------------------------

@extend_schema_view(
    list=extend_schema(summary="List provider configs (keys redacted)"),
    retrieve=extend_schema(summary="Get a provider config"),
    create=extend_schema(summary="Add a provider config"),
    update=extend_schema(summary="Replace a provider config (a new base_url needs api_key in the same request)"),
    partial_update=extend_schema(summary="Update a provider config (a new api_key replaces the stored one; a new "
                                         "base_url needs api_key in the same request)"),
)
@extend_schema(tags=["providers"])
class ProviderConfigViewSet(ManagementView, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                            mixins.CreateModelMixin, mixins.UpdateModelMixin, viewsets.GenericViewSet):
    """Env-defined providers are read-only here (as in the admin): change them in the environment."""

    queryset = ProviderConfig.objects.order_by("id").prefetch_related("extra_keys")
    serializer_class = s.ProviderConfigSerializer
    filterset_class = filters.ProviderFilter
    action_permissions = {"disable": "change", "test": "change"}

    def perform_create(self, serializer):
        serializer.instance = write(do_create_provider, self.actor, serializer.validated_data)

    def perform_update(self, serializer):
        serializer.instance = write(do_update_provider, self.actor, serializer.instance,
                                    serializer.validated_data)

    @extend_schema(summary="Disable a provider config (the gateway stops routing to it at once)", request=None,
                   responses=s.ProviderConfigSerializer)
    @action(detail=True, methods=["post"])
    def disable(self, request, pk=None):
        config = write(do_set_provider_enabled, self.actor, self.get_object(), False)
        return Response(s.ProviderConfigSerializer(config).data)

    @extend_schema(summary="Test a provider config: list the upstream's models, or return its error",
                   request=None, responses=s.ProviderTestSerializer,
                   description="Sends GET {base_url}/models with the config's own credentials (only ever to the "
                               "base URL the key was stored for). The answer is 200 either way: `ok` says "
                               "whether the upstream listed its models.")
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        return Response(test_connection(self.get_object()).as_dict())


# -- prices -----------------------------------------------------------------------------------------------

@extend_schema_view(
    list=extend_schema(summary="List model prices"),
    retrieve=extend_schema(summary="Get a model price"),
    create=extend_schema(summary="Add a model price (costs from valid_from on use it)"),
    update=extend_schema(summary="Replace a model price"),
    partial_update=extend_schema(summary="Update a model price"),
)
@extend_schema(tags=["prices"])
class ModelPriceViewSet(ManagementView, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                        mixins.UpdateModelMixin, viewsets.GenericViewSet):
    queryset = ModelPrice.objects.order_by("provider", "model_pattern", "-valid_from", "id")
    serializer_class = s.ModelPriceSerializer
    filterset_class = filters.PriceFilter

    def perform_create(self, serializer):
        serializer.instance = write(do_create_price, self.actor, serializer.validated_data)


# -- the audit trail --------------------------------------------------------------------------------

@extend_schema_view(
    list=extend_schema(summary="List audit entries (newest first)"),
    retrieve=extend_schema(summary="Get an audit entry"),
)
@extend_schema(tags=["audit"])
class AuditEntryViewSet(ManagementView, viewsets.ReadOnlyModelViewSet):
    queryset = AuditEntry.objects.order_by("-created_at", "-id")
    serializer_class = s.AuditEntrySerializer
    filterset_class = filters.AuditFilter
