"""Protocol reference server: a test double for a GPU inference engine (vLLM), NOT a product feature.

    python tests/reference_server.py --port 8123 [--model default] [--served-name smollm2]
    curl -s localhost:8123/v1/models

No server gives correct prompt log-probabilities on a CPU: vLLM and SGLang need a GPU,
`transformers serve` ignores `echo`/`logprobs`, and llama-cpp-python shifts them by one. This
small FastAPI app implements the part of vLLM's OpenAI-compatible API the workbench's remote
engine uses (and lm-eval's `local-completions` too), over transformers in fp32:

  GET  /v1/models             {"data": [{"id", "root", "max_model_len", ...}]}
  POST /tokenize              {"prompt": str, "add_special_tokens": bool} -> {"tokens", "count", "max_model_len"}
  POST /v1/completions        prompt: str | [str] | [int] | [[int]]; echo, logprobs, max_tokens (0 allowed
                              with echo, as newer vLLM), temperature, top_p, seed, stop
  POST /v1/chat/completions   messages; the tokenizer's chat template
  GET/POST /faults            read / set fault injection (below)

Log-probabilities follow vLLM: with echo, `token_logprobs[0]` is None and `token_logprobs[j]`
is log p(token j | tokens < j); the generated tokens follow. Faults, for the tests of the
remote engine's retries and errors (set on the command line or by POST /faults):
  delay: seconds added to each completion request      fail_429 / fail_500: answer the next N
  drop: close the connection of the next N requests     no_echo: ignore echo/logprobs (as `transformers serve`)
  offset: shift echo log-probs by one (as llama-cpp-python 0.3.x)
"""
from __future__ import annotations

import argparse
import json
import threading
import time


class Faults:
    def __init__(self, **kw):
        self.lock = threading.Lock()
        self.delay = 0.0
        self.fail_429 = 0
        self.fail_500 = 0
        self.drop = 0
        self.no_echo = False
        self.offset = False
        self.seen = {"completions": 0, "chat": 0, "tokenize": 0, "429": 0, "500": 0, "dropped": 0, "prompts": 0}
        self.update(kw)

    def update(self, d: dict) -> None:
        with self.lock:
            for k, v in d.items():
                if k in ("delay", "fail_429", "fail_500", "drop", "no_echo", "offset") and v is not None:
                    setattr(self, k, type(getattr(self, k))(v))

    def take(self, name: str) -> bool:
        """Consume one planned fault of this kind, if any is left."""
        with self.lock:
            n = getattr(self, name)
            if n > 0:
                setattr(self, name, n - 1)
                return True
            return False

    def state(self) -> dict:
        with self.lock:
            return {"delay": self.delay, "fail_429": self.fail_429, "fail_500": self.fail_500, "drop": self.drop,
                    "no_echo": self.no_echo, "offset": self.offset, "seen": dict(self.seen)}


class Engine:
    """transformers model + tokenizer; one forward pass at a time."""

    def __init__(self, folder: str, threads: int | None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if threads:
            torch.set_num_threads(threads)
        self.torch = torch
        self.tok = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        self.lock = threading.Lock()
        cfg = self.model.config
        self.max_len = int(getattr(cfg, "max_position_embeddings", 2048) or 2048)

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return self.tok.encode(text, add_special_tokens=add_special_tokens)

    def piece(self, i: int) -> str:
        return self.tok.decode([i])

    def prompt_logprobs(self, ids: list[int]):
        """[None, lp(t1|t0), ...], [None, {top1: lp, tok: lp}, ...] over the prompt, and the
        log-probs of the next token [V]."""
        torch = self.torch
        with self.lock, torch.inference_mode():
            logits = self.model(input_ids=torch.tensor([ids])).logits[0].float()     # [L, V]
        logp = torch.log_softmax(logits, -1)
        lps, tops = [None], [None]
        for j in range(1, len(ids)):
            row = logp[j - 1]
            a = int(row.argmax())
            lps.append(float(row[ids[j]]))
            tops.append({self.piece(a): float(row[a]), self.piece(ids[j]): float(row[ids[j]])})
        return lps, tops, logp[-1]

    def generate(self, ids: list[int], max_tokens: int, temperature: float, top_p: float, seed: int | None,
                 stop: list[str]) -> tuple[list[int], list[float], list[dict], str, object]:
        """Token by token with a KV cache: (ids, logprobs, tops, finish_reason, stop_reason)."""
        torch = self.torch
        gen = torch.Generator().manual_seed(seed if seed is not None else 0)
        out, lps, tops = [], [], []
        eos = self.tok.eos_token_id
        finish, reason = "length", None
        with self.lock, torch.inference_mode():
            past = None
            feed = torch.tensor([ids])
            for _ in range(max_tokens):
                o = self.model(input_ids=feed, past_key_values=past, use_cache=True)
                past = o.past_key_values
                logp = torch.log_softmax(o.logits[0, -1].float(), -1)
                if temperature and temperature > 0:
                    probs = torch.softmax(o.logits[0, -1].float() / temperature, -1)
                    if top_p < 1.0:
                        sp, si = probs.sort(descending=True)
                        keep = sp.cumsum(0) - sp < top_p
                        probs = torch.zeros_like(probs).scatter(0, si[keep], sp[keep])
                    t = int(torch.multinomial(probs / probs.sum(), 1, generator=gen))
                else:
                    t = int(logp.argmax())
                a = int(logp.argmax())
                if t == eos:
                    finish, reason = "stop", eos
                    break
                out.append(t)
                lps.append(float(logp[t]))
                tops.append({self.piece(a): float(logp[a]), self.piece(t): float(logp[t])})
                feed = torch.tensor([[t]])
                if stop:
                    text = self.tok.decode(out, skip_special_tokens=True)
                    hit = [s for s in stop if s in text]
                    if hit:
                        finish, reason = "stop", min(hit, key=text.find)
                        break
        return out, lps, tops, finish, reason


def build_app(engine: Engine, served_name: str, root: str, faults: Faults):
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    app = FastAPI(title="protocol reference server (test double for vLLM)")

    @app.get("/v1/models")
    def models():
        return {"object": "list", "data": [{"id": served_name, "object": "model", "created": 0,
                                            "owned_by": "protocol-reference-server", "root": root,
                                            "max_model_len": engine.max_len}]}

    @app.get("/faults")
    def get_faults():
        return faults.state()

    @app.post("/faults")
    def set_faults(body: dict):
        faults.update(body)
        return faults.state()

    @app.post("/tokenize")
    def tokenize(body: dict):
        faults.seen["tokenize"] += 1
        ids = engine.encode(body.get("prompt", ""), bool(body.get("add_special_tokens", True)))
        return {"tokens": ids, "count": len(ids), "max_model_len": engine.max_len}

    def bad(msg: str, code: int = 400):
        return JSONResponse({"object": "error", "message": msg, "type": "BadRequestError", "code": code},
                            status_code=code)

    def one_completion(index: int, prompt, body: dict) -> dict:
        ids = engine.encode(prompt) if isinstance(prompt, str) else list(prompt)
        if not ids:
            raise ValueError("empty prompt")
        if len(ids) >= engine.max_len:
            raise ValueError(f"This model's maximum context length is {engine.max_len} tokens; the prompt has {len(ids)}")
        echo = bool(body.get("echo")) and not faults.no_echo
        want_lp = body.get("logprobs") is not None and not faults.no_echo
        max_tokens = int(body.get("max_tokens", 16))
        temperature = float(body.get("temperature", 1.0) or 0.0)
        stop = body.get("stop") or []
        stop = [stop] if isinstance(stop, str) else [s for s in stop if s]
        plps = ptops = None
        if echo:
            plps, ptops, last = engine.prompt_logprobs(ids)
        if echo and max_tokens <= 1 and temperature == 0 and not stop:
            # a scoring request: the one greedy token comes from the same forward pass
            gen, glps, gtops, finish, reason = [], [], [], "length", None
            if max_tokens == 1:
                t = int(last.argmax())
                if t == engine.tok.eos_token_id:
                    finish, reason = "stop", t
                else:
                    gen, glps, gtops = [t], [float(last[t])], [{engine.piece(t): float(last[t])}]
        else:
            gen, glps, gtops, finish, reason = engine.generate(ids, max_tokens, temperature,
                                                               float(body.get("top_p", 1.0)), body.get("seed"), stop)
        text = engine.tok.decode(gen, skip_special_tokens=True)
        if isinstance(reason, str) and reason in text:
            text = text[:text.find(reason)]
        as_ids = bool(body.get("return_tokens_as_token_ids"))
        toks = [f"token_id:{t}" if as_ids else engine.piece(t) for t in gen]
        lps, tops = glps, gtops
        if echo:
            if faults.offset:
                # llama-cpp-python 0.3.x: token j gets the distribution that predicts token j+1.
                plps = [None] + plps[2:] + [glps[0] if glps else None]
            text = engine.tok.decode(ids) + text
            toks = [f"token_id:{t}" if as_ids else engine.piece(t) for t in ids] + toks
            lps, tops = plps + glps, ptops + gtops
        logprobs = None
        if want_lp:
            offsets, pos = [], 0
            for t in toks:
                offsets.append(pos)
                pos += len(t)
            logprobs = {"tokens": toks, "token_logprobs": lps, "top_logprobs": tops, "text_offset": offsets}
        faults.seen["prompts"] += 1
        return {"index": index, "text": text, "logprobs": logprobs, "finish_reason": finish, "stop_reason": reason,
                "_n": len(gen), "_p": len(ids)}

    @app.post("/v1/completions")
    def completions(body: dict):
        faults.seen["completions"] += 1
        if faults.delay:
            time.sleep(faults.delay)
        prompt = body.get("prompt")
        if isinstance(prompt, str) or (isinstance(prompt, list) and prompt and isinstance(prompt[0], int)):
            prompts = [prompt]
        elif isinstance(prompt, list) and prompt and all(isinstance(p, (str, list)) for p in prompt):
            prompts = prompt
        else:
            return bad("prompt must be a string, a list of strings, a list of token ids or a list of those")
        if int(body.get("max_tokens", 16)) == 0 and not body.get("echo"):
            return bad("max_tokens must be at least 1 without echo")
        if body.get("model") not in (None, served_name):
            return bad(f"The model `{body.get('model')}` does not exist.", 404)
        try:
            choices = [one_completion(i, p, body) for i, p in enumerate(prompts)]
        except ValueError as exc:
            return bad(str(exc))
        usage = {"prompt_tokens": sum(c.pop("_p") for c in choices), "completion_tokens": sum(c.pop("_n") for c in choices)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        return {"id": f"cmpl-{faults.seen['completions']}", "object": "text_completion", "created": int(time.time()),
                "model": served_name, "choices": choices, "usage": usage}

    @app.post("/v1/chat/completions")
    def chat(body: dict):
        faults.seen["chat"] += 1
        if faults.delay:
            time.sleep(faults.delay)
        text = engine.tok.apply_chat_template(body.get("messages") or [], tokenize=False, add_generation_prompt=True)
        stop = body.get("stop") or []
        stop = [stop] if isinstance(stop, str) else stop
        gen, _, _, finish, reason = engine.generate(engine.encode(text), int(body.get("max_tokens", 16)),
                                                    float(body.get("temperature", 1.0) or 0.0),
                                                    float(body.get("top_p", 1.0)), body.get("seed"), stop)
        out = engine.tok.decode(gen, skip_special_tokens=True)
        if isinstance(reason, str) and reason in out:
            out = out[:out.find(reason)]
        return {"id": "chatcmpl", "object": "chat.completion", "created": int(time.time()), "model": served_name,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": out}, "finish_reason": finish,
                             "stop_reason": reason}],
                "usage": {"completion_tokens": len(gen)}}

    return FaultLayer(app, faults)


class FaultLayer:
    """The outermost ASGI layer: answers 429/500 or drops the connection before the app sees
    the request (for the completion endpoints only)."""

    def __init__(self, app, faults: Faults):
        self.app = app
        self.faults = faults

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].endswith("completions"):
            f = self.faults
            if f.take("drop"):
                f.seen["dropped"] += 1
                # uvicorn's `send` is a method of the request cycle that owns the socket.
                transport = getattr(getattr(send, "__self__", None), "transport", None)
                if transport is not None:
                    transport.close()
                    return
            for code in (429, 500):
                if f.take(f"fail_{code}"):
                    f.seen[str(code)] += 1
                    body = json.dumps({"object": "error", "message": f"injected fault {code}", "code": code}).encode()
                    headers = [(b"content-type", b"application/json")]
                    if code == 429:
                        headers.append((b"retry-after", b"0"))
                    await send({"type": "http.response.start", "status": code, "headers": headers})
                    await send({"type": "http.response.body", "body": body})
                    return
        await self.app(scope, receive, send)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="default", help="a workbench model name or folder")
    p.add_argument("--served-name", default=None, help="the model id the server answers to")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8123)
    p.add_argument("--threads", type=int, default=1, help="torch threads (the test machine is shared)")
    p.add_argument("--delay", type=float, default=0.0)
    p.add_argument("--fail-429", type=int, default=0)
    p.add_argument("--fail-500", type=int, default=0)
    p.add_argument("--drop", type=int, default=0)
    p.add_argument("--no-echo", action="store_true")
    p.add_argument("--offset", action="store_true")
    a = p.parse_args(argv)
    import uvicorn

    from workbench.engine.models import DEFAULT_HUB_ID, resolve_model

    resolved = resolve_model(a.model)
    served = a.served_name or (DEFAULT_HUB_ID if a.model == "default" else a.model)
    faults = Faults(delay=a.delay, fail_429=a.fail_429, fail_500=a.fail_500, drop=a.drop, no_echo=a.no_echo,
                    offset=a.offset)
    app = build_app(Engine(resolved.path, a.threads), served, resolved.path, faults)
    uvicorn.run(app, host=a.host, port=a.port, log_level="warning", timeout_keep_alive=30)


if __name__ == "__main__":
    main()
