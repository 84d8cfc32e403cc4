"""Admin over the price table (every save audited)."""

from django.contrib import admin

from ..audit.admin import AuditedModelAdmin
from ..models import ModelPrice


@admin.register(ModelPrice)
class ModelPriceAdmin(AuditedModelAdmin):
    list_display = ["provider", "model_pattern", "input_per_million", "cached_input_per_million",
                    "cache_write_per_million", "output_per_million", "reasoning_per_million", "per_image",
                    "per_audio_minute", "per_million_characters", "valid_from", "note"]
    list_filter = ["provider"]
    search_fields = ["model_pattern", "provider"]
