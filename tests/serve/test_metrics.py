"""GET /metrics in the Prometheus text format, read back with prometheus_client's parser: request counts by
route and status, tokens equal to the responses' usage, time to first token, latency, queue depth, batch sizes."""
import httpx
import openai
import pytest

from .conftest import openai_client, start_server

parser = pytest.importorskip("prometheus_client.parser")


@pytest.fixture(scope="module")
def server(lm_dir, mt_run_dir):
    with start_server([lm_dir, mt_run_dir], max_body_bytes=64 * 1024) as srv:
        yield srv


def scrape(server) -> dict[tuple, float]:
    """{(sample name, sorted labels): value} of every sample."""
    r = httpx.get(f"{server.url}/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in parser.text_string_to_metric_families(r.text) for s in fam.samples}


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_requests_tokens_and_latency_are_counted(server, lm_dir, mt_run_dir):
    client = openai_client(server)
    before = scrape(server)
    usages = [client.completions.create(model=lm_dir.name, prompt="To be", max_tokens=k, temperature=0).usage
              for k in (3, 5)]
    usages.append(client.completions.create(model=mt_run_dir.name, prompt="a red circle", max_tokens=6,
                                            extra_body={"target_lang": "zh"}).usage)
    stream = client.chat.completions.create(model=lm_dir.name, messages=[{"role": "user", "content": "hi"}],
                                            max_tokens=4, stream=True, stream_options={"include_usage": True})
    usages.append([c for c in stream][-1].usage)
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model=lm_dir.name, prompt="x", temperature=-1)
    assert httpx.post(f"{server.url}/v1/completions", json={"prompt": "a" * 70_000}).status_code == 413
    assert httpx.get(f"{server.url}/no/such/page").status_code == 404
    after = scrape(server)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    done = dict(route="/v1/completions", method="POST")
    assert delta("lingvis_requests_total", status="200", **done) == 3
    assert delta("lingvis_requests_total", status="400", **done) == 1
    assert delta("lingvis_requests_total", status="413", **done) == 1  # refused before routing, still named
    assert delta("lingvis_requests_total", route="/v1/chat/completions", method="POST", status="200") == 1
    assert delta("lingvis_requests_total", route="unmatched", method="GET", status="404") == 1
    assert delta("lingvis_request_duration_seconds_count", **done) == 5
    assert delta("lingvis_request_duration_seconds_sum", **done) > 0
    gen = sum(delta("lingvis_generation_tokens_total", model=m) for m in (lm_dir.name, mt_run_dir.name))
    prompt = sum(delta("lingvis_prompt_tokens_total", model=m) for m in (lm_dir.name, mt_run_dir.name))
    assert gen == sum(u.completion_tokens for u in usages) and prompt == sum(u.prompt_tokens for u in usages)
    assert delta("lingvis_prompt_tokens_total", model=mt_run_dir.name) == usages[2].prompt_tokens
    assert delta("lingvis_time_to_first_token_seconds_count", model=lm_dir.name) == 3
    assert value(after, "lingvis_requests_in_progress") == 1  # this scrape


def test_queue_depth_and_batch_sizes_follow_the_engines(server, lm_dir, mt_run_dir):
    openai_client(server).completions.create(model=lm_dir.name, prompt=["To", "be, or"], max_tokens=4, temperature=0)
    samples = scrape(server)
    health = httpx.get(f"{server.url}/health").json()["models"]
    for name in (lm_dir.name, mt_run_dir.name):
        assert value(samples, "lingvis_queue_depth", model=name) == health[name]["waiting"] == 0
    lm = health[lm_dir.name]
    assert value(samples, "lingvis_batch_size_count", model=lm_dir.name) == lm["steps"] > 0
    assert value(samples, "lingvis_batch_size_sum", model=lm_dir.name) == lm["row_steps"]
    assert value(samples, "lingvis_batch_size_bucket", model=lm_dir.name, le="1.0") < lm["steps"]  # 2-row steps
    assert value(samples, "lingvis_batch_size_bucket", model=lm_dir.name, le="+Inf") == lm["steps"]
    mt = health[mt_run_dir.name]
    assert value(samples, "lingvis_batch_size_count", model=mt_run_dir.name) == mt["batches"]
    assert value(samples, "lingvis_batch_size_sum", model=mt_run_dir.name) == mt["rows"]


def test_metrics_are_open_and_cors_is_off_by_default(lm_dir):
    with start_server([lm_dir], api_key="k") as srv:
        assert httpx.get(f"{srv.url}/v1/models").status_code == 401
        assert "lingvis_requests_total" in httpx.get(f"{srv.url}/metrics").text
        r = httpx.options(f"{srv.url}/v1/models", headers={"Origin": "https://app.example",
                                                           "Access-Control-Request-Method": "GET"})
        assert "access-control-allow-origin" not in r.headers
