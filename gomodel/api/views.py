"""The management API's views: each validates its input and calls one function of
gomodel.api.services (which writes the change and its audit row in one transaction)."""

from django.db.models import Q
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounting.models import ApiKey, ModelPrice, Tenant
from gomodel.models import AuditEntry
from providers.models import ProviderConfig

from . import serializers as s
from . import services
from .authentication import ManagementAuthentication, actor_name
from .permissions import IsGatewayAdmin

ID = r"[0-9]{1,18}"  # a longer number matches no route (404) rather than overflowing a bigint


class ManagementView:
    authentication_classes = [ManagementAuthentication]
    permission_classes = [IsGatewayAdmin]
    lookup_value_regex = ID
    filter_serializer_class = None

    @property
    def actor(self) -> str:
        return actor_name(self.request.user)

    def filters(self) -> dict:
        if self.filter_serializer_class is None:
            return {}
        serializer = self.filter_serializer_class(data=self.request.query_params.dict())
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def paginated(self, queryset, serializer_class):
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(serializer_class(page, many=True).data)


def date_range(queryset, filters, field="created_at"):
    if "created_after" in filters:
        queryset = queryset.filter(**{f"{field}__gte": filters["created_after"]})
    if "created_before" in filters:
        queryset = queryset.filter(**{f"{field}__lt": filters["created_before"]})
    return queryset


# -- tenants ----------------------------------------------------------------------------------------

@extend_schema_view(
    list=extend_schema(summary="List tenants", parameters=[s.TenantFilter]),
    retrieve=extend_schema(summary="Get a tenant"),
)
@extend_schema(tags=["tenants"])
class TenantViewSet(ManagementView, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = Tenant.objects.order_by("slug", "id")
    serializer_class = s.TenantSerializer
    filter_serializer_class = s.TenantFilter

    def get_queryset(self):
        queryset = super().get_queryset()
        if self.action != "list":
            return queryset
        filters = self.filters()
        if "active" in filters:
            queryset = queryset.filter(active=filters["active"])
        if filters.get("search"):
            queryset = queryset.filter(Q(slug__icontains=filters["search"]) | Q(name__icontains=filters["search"]))
        return date_range(queryset, filters)

    @extend_schema(summary="Create a tenant", request=s.TenantSerializer, responses={201: s.TenantSerializer})
    def create(self, request):
        serializer = s.TenantSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        tenant = services.do_api_create_tenant(self.actor, serializer.validated_data)
        return Response(s.TenantSerializer(tenant).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Replace a tenant's editable fields", request=s.TenantUpdateSerializer,
                   responses=s.TenantSerializer)
    def update(self, request, pk=None, partial=False):
        tenant = self.get_object()
        serializer = s.TenantUpdateSerializer(tenant, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        tenant = services.do_api_update_tenant(self.actor, tenant, serializer.validated_data)
        return Response(s.TenantSerializer(tenant).data)

    @extend_schema(summary="Update a tenant (name, active, budgets)", request=s.TenantUpdateSerializer,
                   responses=s.TenantSerializer)
    def partial_update(self, request, pk=None):
        return self.update(request, pk, partial=True)

    @extend_schema(summary="Deactivate a tenant (its keys stop working at once)", request=None,
                   responses=s.TenantSerializer)
    @action(detail=True, methods=["post"])
    def deactivate(self, request, pk=None):
        tenant = services.do_api_deactivate_tenant(self.actor, self.get_object())
        return Response(s.TenantSerializer(tenant).data)

    @extend_schema(summary="List a tenant's API keys", parameters=[s.TenantKeyFilter],
                   responses=s.ApiKeySerializer(many=True))
    @action(detail=True, methods=["get"], url_path="keys", filter_serializer_class=s.TenantKeyFilter)
    def keys(self, request, pk=None):
        tenant = self.get_object()
        filters = self.filters()
        queryset = ApiKey.objects.filter(tenant=tenant).select_related("tenant").order_by("-created_at", "-id")
        if "active" in filters:
            queryset = queryset.filter(active=filters["active"])
        return self.paginated(date_range(queryset, filters), s.ApiKeySerializer)

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
                               "with one of them: that day's month. Any span is allowed.")
    @action(detail=True, methods=["get"], filter_serializer_class=s.UsageQuery, pagination_class=None)
    def usage(self, request, pk=None):
        tenant = self.get_object()
        query = self.filters()
        return Response(services.tenant_usage(tenant, query.get("start"), query.get("end")))


def issue_key(actor, tenant, data):
    if not tenant.active:
        return Response({"tenant": ["This tenant is deactivated; reactivate it before issuing keys."]},
                        status=status.HTTP_400_BAD_REQUEST)
    key, plaintext = services.do_api_create_key(actor, tenant, data)
    body = s.ApiKeySerializer(key).data
    body["key"] = plaintext
    return Response(body, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})


# -- API keys ---------------------------------------------------------------------------------------

@extend_schema_view(
    list=extend_schema(summary="List API keys (never their secrets)", parameters=[s.ApiKeyFilter]),
    retrieve=extend_schema(summary="Get an API key"),
)
@extend_schema(tags=["keys"])
class ApiKeyViewSet(ManagementView, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = ApiKey.objects.select_related("tenant").order_by("-created_at", "-id")
    serializer_class = s.ApiKeySerializer
    filter_serializer_class = s.ApiKeyFilter

    def get_queryset(self):
        queryset = super().get_queryset()
        if self.action != "list":
            return queryset
        filters = self.filters()
        if "tenant" in filters:
            queryset = queryset.filter(tenant_id=filters["tenant"])
        if "tenant_slug" in filters:
            queryset = queryset.filter(tenant__slug=filters["tenant_slug"])
        if "active" in filters:
            queryset = queryset.filter(active=filters["active"])
        return date_range(queryset, filters)

    @extend_schema(summary="Issue an API key (the response carries the plaintext once)",
                   request=s.ApiKeyCreateSerializer, responses={201: s.ApiKeyCreatedSerializer})
    def create(self, request):
        serializer = s.ApiKeyCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        return issue_key(self.actor, data.pop("tenant"), data)

    @extend_schema(summary="Replace a key's name, expiry and limits", responses=s.ApiKeySerializer)
    def update(self, request, pk=None, partial=False):
        key = self.get_object()
        serializer = s.ApiKeySerializer(key, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        key = services.do_api_update_key(self.actor, key, serializer.validated_data)
        return Response(s.ApiKeySerializer(key).data)

    @extend_schema(summary="Update a key's name, expiry or limits", responses=s.ApiKeySerializer)
    def partial_update(self, request, pk=None):
        return self.update(request, pk, partial=True)

    @extend_schema(summary="Revoke a key (it stops authenticating at once)", request=None,
                   responses=s.ApiKeySerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        key = services.do_api_revoke_key(self.actor, self.get_object())
        return Response(s.ApiKeySerializer(key).data)



# -- provider configs -------------------------------------------------------------------------------

@extend_schema_view(
    list=extend_schema(summary="List provider configs (keys redacted)", parameters=[s.ProviderFilter]),
    retrieve=extend_schema(summary="Get a provider config"),
)
@extend_schema(tags=["providers"])
class ProviderConfigViewSet(ManagementView, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                            viewsets.GenericViewSet):
    queryset = ProviderConfig.objects.order_by("id")
    serializer_class = s.ProviderConfigSerializer
    filter_serializer_class = s.ProviderFilter

    def get_queryset(self):
        queryset = super().get_queryset()
        if self.action != "list":
            return queryset
        filters = self.filters()
        if "provider_type" in filters:
            queryset = queryset.filter(provider_type=filters["provider_type"])
        if "enabled" in filters:
            queryset = queryset.filter(enabled=filters["enabled"])
        return queryset

    @extend_schema(summary="Add a provider config", responses={201: s.ProviderConfigSerializer})
    def create(self, request):
        serializer = s.ProviderConfigSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        config = services.do_api_create_provider(self.actor, serializer.validated_data)
        return Response(s.ProviderConfigSerializer(config).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Replace a provider config", responses=s.ProviderConfigSerializer)
    def update(self, request, pk=None, partial=False):
        config = self.get_object()
        serializer = s.ProviderConfigSerializer(config, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        config = services.do_api_update_provider(self.actor, config, serializer.validated_data)
        return Response(s.ProviderConfigSerializer(config).data)

    @extend_schema(summary="Update a provider config (a new api_key replaces the stored one)",
                   responses=s.ProviderConfigSerializer)
    def partial_update(self, request, pk=None):
        return self.update(request, pk, partial=True)

    @extend_schema(summary="Disable a provider config (the gateway stops routing to it at once)", request=None,
                   responses=s.ProviderConfigSerializer)
    @action(detail=True, methods=["post"])
    def disable(self, request, pk=None):
        config = services.do_api_disable_provider(self.actor, self.get_object())
        return Response(s.ProviderConfigSerializer(config).data)

    @extend_schema(summary="Test a provider config: list the upstream's models, or return its error",
                   request=None, responses=s.ProviderTestSerializer,
                   description="Sends GET {base_url}/models with the config's own credentials. The answer "
                               "is 200 either way: `ok` says whether the upstream listed its models.")
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        return Response(services.probe_provider(self.get_object()))


# -- prices -----------------------------------------------------------------------------------------------

@extend_schema_view(
    list=extend_schema(summary="List model prices", parameters=[s.PriceFilter]),
    retrieve=extend_schema(summary="Get a model price"),
)
@extend_schema(tags=["prices"])
class ModelPriceViewSet(ManagementView, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = ModelPrice.objects.order_by("provider", "model_pattern", "-valid_from", "id")
    serializer_class = s.ModelPriceSerializer
    filter_serializer_class = s.PriceFilter

    def get_queryset(self):
        queryset = super().get_queryset()
        if self.action != "list":
            return queryset
        filters = self.filters()
        for field in ("provider", "model_pattern"):
            if field in filters:
                queryset = queryset.filter(**{field: filters[field]})
        if filters.get("search"):
            queryset = queryset.filter(model_pattern__icontains=filters["search"])
        return queryset

    @extend_schema(summary="Add a model price (costs from valid_from on use it)",
                   responses={201: s.ModelPriceSerializer})
    def create(self, request):
        serializer = s.ModelPriceSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        price = services.do_api_create_price(self.actor, serializer.validated_data)
        return Response(s.ModelPriceSerializer(price).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Replace a model price", responses=s.ModelPriceSerializer)
    def update(self, request, pk=None, partial=False):
        price = self.get_object()
        serializer = s.ModelPriceSerializer(price, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        price = services.do_api_update_price(self.actor, price, serializer.validated_data)
        return Response(s.ModelPriceSerializer(price).data)

    @extend_schema(summary="Update a model price", responses=s.ModelPriceSerializer)
    def partial_update(self, request, pk=None):
        return self.update(request, pk, partial=True)


# -- the audit trail --------------------------------------------------------------------------------

@extend_schema_view(
    list=extend_schema(summary="List audit entries (newest first)", parameters=[s.AuditFilter]),
    retrieve=extend_schema(summary="Get an audit entry"),
)
@extend_schema(tags=["audit"])
class AuditEntryViewSet(ManagementView, viewsets.ReadOnlyModelViewSet):
    queryset = AuditEntry.objects.order_by("-created_at", "-id")
    serializer_class = s.AuditEntrySerializer
    filter_serializer_class = s.AuditFilter

    def get_queryset(self):
        queryset = super().get_queryset()
        if self.action != "list":
            return queryset
        filters = self.filters()
        for field in ("actor", "action", "object_type", "object_id"):
            if field in filters:
                queryset = queryset.filter(**{field: filters[field]})
        return date_range(queryset, filters)
