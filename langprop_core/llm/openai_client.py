"""An :class:`LLMClient` for any OpenAI-compatible chat-completions endpoint.

It uses the real ``openai`` package (OpenAI, Azure's OpenAI-compatible
endpoint, vLLM, Ollama, llama.cpp server, ...) with the package's own retries
turned off: retries happen here, with tenacity, so that rate limits (429),
dropped or refused connections and 5xx errors back off exponentially (honouring
a server's ``Retry-After``, capped) and give up with one :class:`LLMError` that
names the endpoint and the last error. Other API errors (bad key, unknown
model, bad request) fail at once: retrying cannot fix them. Nor is a request
that ran past the timeout sent again: a model that took that long will take
as long again, and every retry re-sends (and re-pays) the prompt; set the
timeout for the model instead (:data:`~langprop_core.llm.factory.DEFAULT_TIMEOUT_S`).
"""
from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Any, Sequence

import openai
from tenacity import RetryCallState, RetryError, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from langprop_core.llm.base import ChatMessage, Completion, LLMClient, LLMError, SamplingParams, TokenUsage
from langprop_core.llm.factory import DEFAULT_TIMEOUT_S, resolve_api_key, resolve_base_url

__all__ = ["OpenAIClient", "RETRYABLE_ERRORS", "resolve_base_url", "resolve_api_key", "DUMMY_API_KEY"]

log = logging.getLogger(__name__)

RETRYABLE_ERRORS: tuple[type[BaseException], ...] = (
    openai.RateLimitError,        # 429
    openai.APIConnectionError,    # refused / dropped connections (not its subclass APITimeoutError)
    openai.InternalServerError,   # 5xx
)


def _retryable(exc: BaseException) -> bool:
    """Errors a retry can fix; a timeout is not one (see the module docstring)."""
    return isinstance(exc, RETRYABLE_ERRORS) and not isinstance(exc, openai.APITimeoutError)
# Local servers (vLLM, Ollama, llama.cpp) ignore the key, but the openai package insists on one.
DUMMY_API_KEY = "not-needed"
OPENAI_DEFAULT_URL = "https://api.openai.com/v1"


class OpenAIClient(LLMClient):
    """Chat completions through the ``openai`` package, with backoff and token accounting.

    ``max_retries`` retries follow the first attempt; waits grow exponentially
    from ``min_wait_s`` up to ``max_wait_s`` (a 429's ``Retry-After`` is used
    when longer, capped at ``max_wait_s``). ``max_choices_per_request`` caps the
    OpenAI ``n`` of one HTTP request (None: no cap); when a server returns fewer
    choices than asked (some ignore ``n``), further requests fetch the rest.
    """

    def __init__(self, base_url: str | None = None, api_key: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
                 max_retries: int = 5, min_wait_s: float = 1.0, max_wait_s: float = 60.0,
                 max_choices_per_request: int | None = None) -> None:
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        if max_choices_per_request is not None and max_choices_per_request < 1:
            raise ValueError(f"max_choices_per_request must be >= 1, got {max_choices_per_request}")
        self.base_url = resolve_base_url(base_url)
        key = resolve_api_key(api_key)
        if key is None:
            if self.base_url is None:
                raise LLMError("no LLM endpoint configured: set OPENAI_API_KEY for OpenAI, or "
                               "LANGPROP_LLM_BASE_URL for another OpenAI-compatible server")
            key = DUMMY_API_KEY
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.min_wait_s = min_wait_s
        self.max_wait_s = max_wait_s
        self.max_choices_per_request = max_choices_per_request
        self._client = openai.OpenAI(base_url=self.base_url, api_key=key, timeout=timeout_s, max_retries=0)
        self._usage = TokenUsage()
        self._lock = threading.Lock()  # top-k updates call complete() from several threads
        self._send_seed = True  # until the endpoint refuses a seed

    @property
    def endpoint(self) -> str:
        return self.base_url or OPENAI_DEFAULT_URL

    def describe(self) -> str:
        return f"OpenAI-compatible endpoint {self.endpoint}"

    def usage(self) -> TokenUsage:
        """Tokens and calls (successful HTTP requests) so far, over all threads."""
        with self._lock:
            return dataclasses.replace(self._usage)

    # -- one HTTP request, retried -----------------------------------------
    def _wait(self, state: RetryCallState) -> float:
        wait = wait_exponential(multiplier=self.min_wait_s, min=self.min_wait_s, max=self.max_wait_s)(state)
        exc = state.outcome.exception() if state.outcome is not None else None
        response = getattr(exc, "response", None)
        if response is not None:
            header = response.headers.get("retry-after")
            try:
                wait = max(wait, min(float(header), self.max_wait_s)) if header else wait
            except ValueError:
                pass  # an HTTP date: keep the exponential wait
        return wait

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        sleep = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning("LLM call to %s failed (%s); retry %d of %d in %.2f s", self.endpoint,
                    _describe_error(exc), state.attempt_number, self.max_retries, sleep)

    def _request(self, messages: list[dict[str, str]], params: SamplingParams, n: int) -> Any:
        kwargs: dict[str, Any] = {"model": params.model, "messages": messages,
                                  "temperature": params.temperature, "n": n}
        if params.max_tokens is not None:
            kwargs["max_tokens"] = params.max_tokens
        if params.seed is not None and self._send_seed:
            kwargs["seed"] = params.seed
        retrying = Retrying(
            retry=retry_if_exception(_retryable),
            stop=stop_after_attempt(self.max_retries + 1),
            wait=self._wait,
            before_sleep=self._log_retry,
            reraise=False,
        )
        try:
            try:
                return retrying(self._client.chat.completions.create, **kwargs)
            except openai.BadRequestError as exc:
                if "seed" not in kwargs or "seed" not in str(exc).lower():
                    raise
                # An endpoint without seeds (some proxies reject unknown parameters): ask again without.
                log.warning("LLM endpoint %s refused the seed parameter (%s); sending none from now on",
                            self.endpoint, _describe_error(exc))
                self._send_seed = False
                kwargs.pop("seed")
                return retrying(self._client.chat.completions.create, **kwargs)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            raise LLMError(f"LLM call to {self.endpoint} (model {params.model!r}) gave up after "
                           f"{self.max_retries + 1} attempts; last error: {_describe_error(last)}") from last
        except openai.APITimeoutError as exc:
            raise LLMError(f"LLM call to {self.endpoint} (model {params.model!r}) took longer than its timeout "
                           f"of {self.timeout_s:g} s and was not sent again; give the model more time with "
                           f"--llm-timeout or LANGPROP_LLM_TIMEOUT") from exc
        except openai.OpenAIError as exc:
            raise LLMError(f"LLM call to {self.endpoint} (model {params.model!r}) failed: "
                           f"{_describe_error(exc)}") from exc

    # -- LLMClient -----------------------------------------------------------
    def complete(self, messages: Sequence[ChatMessage], params: SamplingParams) -> Completion:
        """``params.n`` replies to ``messages``; raises :class:`LLMError` when it gives up."""
        if params.n < 1:
            raise ValueError(f"SamplingParams.n must be >= 1, got {params.n}")
        payload = [m.to_dict() for m in messages]
        replies: list[str] = []
        usage = TokenUsage()
        # Each round asks for what is still missing; a server that ignores `n`
        # answers one choice per request, so at most params.n rounds are needed.
        for round_index in range(params.n):
            want = params.n - len(replies)
            if want <= 0:
                break
            if self.max_choices_per_request is not None:
                want = min(want, self.max_choices_per_request)
            response = self._request(payload, params.for_round(round_index), want)
            choices = sorted(response.choices or [], key=lambda c: c.index)
            replies.extend((c.message.content or "") for c in choices[:want])
            if response.usage is not None:
                usage.prompt_tokens += response.usage.prompt_tokens or 0
                usage.completion_tokens += response.usage.completion_tokens or 0
            usage.calls += 1
            if not choices:
                log.warning("LLM endpoint %s answered with no choices", self.endpoint)
                break
        with self._lock:
            self._usage.add(usage)
        if len(replies) < params.n:
            log.warning("LLM endpoint %s gave %d of %d replies", self.endpoint, len(replies), params.n)
        return Completion(replies=replies, params=params, usage=usage, cached=False)


def _describe_error(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    status = getattr(exc, "status_code", None)
    text = str(exc) or type(exc).__name__
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(exc).__name__}" + (f" (HTTP {status})" if status else "") + f": {text}"
