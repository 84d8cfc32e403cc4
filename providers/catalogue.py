"""The fourteen seed providers: wire format, default base URL, and how they authenticate.

Env names are GoModel's: `<PREFIX>_API_KEY`, `<PREFIX>_BASE_URL`, `<PREFIX>_MODELS`.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class ProviderSpec:
    key: str  # provider type, also the default config name and the `provider/` model prefix
    label: str
    env_prefix: str
    wire: str  # adapter package: "openai_compat", "anthropic" or "gemini"
    default_base_url: str  # "" when the provider has no public default (Oracle)
    needs_key: bool = True
    needs_base_url: bool = False


CATALOGUE: dict[str, ProviderSpec] = {
    spec.key: spec
    for spec in (
        ProviderSpec("openai", "OpenAI", "OPENAI", "openai_compat", "https://api.openai.com/v1"),
        ProviderSpec("anthropic", "Anthropic", "ANTHROPIC", "anthropic", "https://api.anthropic.com/v1"),
        ProviderSpec(
            "gemini", "Google Gemini", "GEMINI", "gemini", "https://generativelanguage.googleapis.com/v1beta"
        ),
        ProviderSpec("groq", "Groq", "GROQ", "openai_compat", "https://api.groq.com/openai/v1"),
        ProviderSpec("openrouter", "OpenRouter", "OPENROUTER", "openai_compat", "https://openrouter.ai/api/v1"),
        ProviderSpec("deepseek", "DeepSeek", "DEEPSEEK", "openai_compat", "https://api.deepseek.com"),
        ProviderSpec("zai", "Z.ai", "ZAI", "openai_compat", "https://api.z.ai/api/paas/v4"),
        ProviderSpec("xai", "xAI", "XAI", "openai_compat", "https://api.x.ai/v1"),
        ProviderSpec("minimax", "MiniMax", "MINIMAX", "openai_compat", "https://api.minimax.io/v1"),
        ProviderSpec("xiaomi", "Xiaomi MiMo", "XIAOMI", "openai_compat", "https://api.xiaomimimo.com/v1"),
        ProviderSpec("opencode_go", "OpenCode Go", "OPENCODE_GO", "openai_compat", "https://opencode.ai/zen/go/v1"),
        ProviderSpec("oracle", "Oracle", "ORACLE", "openai_compat", "", needs_base_url=True),
        ProviderSpec(
            "ollama", "Ollama", "OLLAMA", "openai_compat", "http://localhost:11434/v1", needs_key=False,
            needs_base_url=True,
        ),
        ProviderSpec(
            "bailian", "Alibaba Bailian", "BAILIAN", "openai_compat",
            "https://dashscope.aliyuncs.com/compatible-mode/v1",
        ),
    )
}

PROVIDER_CHOICES = [(spec.key, spec.label) for spec in CATALOGUE.values()]
