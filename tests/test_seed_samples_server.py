"""Every code sample of the seed spec runs against a Lichen server as well.

The same tests as ``test_seed_samples.py`` (reused, not copied), with ``LICHEN_URL``,
``LICHEN_PROJECT_ID`` and ``LICHEN_PROJECT_KEY`` pointing every ``Client()`` (in this
process and in the sample programs it starts) at a real ``lichen serve`` subprocess.
Each test gets a fresh project, so each starts from an empty store, as the embedded
runs do.
"""

from __future__ import annotations

import pytest
import test_seed_samples as embedded
from server_helpers import Deployment, shared_moto

from lichen import Client


@pytest.fixture(scope="module", params=["fs", "s3"])
def deployment(request, tmp_path_factory):
    moto = shared_moto() if request.param == "s3" else None
    deployed = Deployment(request.param, tmp_path_factory.mktemp(f"seed-{request.param}"), moto)
    yield deployed
    deployed.stop()


@pytest.fixture(autouse=True)
def against_the_server(deployment, monkeypatch):
    credentials = deployment.server.create_project()
    for key, value in credentials.env(deployment.server.url).items():
        monkeypatch.setenv(key, value)
    assert Client().url == deployment.server.url
    return credentials


test_create_or_resume_starts_empty_then_resumes_pushed_docs = embedded.test_create_or_resume_starts_empty_then_resumes_pushed_docs
test_mutate_query_and_persist_fragments = embedded.test_mutate_query_and_persist_fragments
test_extend_twice_keeps_one_copy_per_id = embedded.test_extend_twice_keeps_one_copy_per_id
test_live_call_queries_session_and_long_term_index = embedded.test_live_call_queries_session_and_long_term_index


def test_the_samples_really_went_to_the_server(deployment, against_the_server):
    embedded.seed_support_faqs()
    store = deployment.server.open_storage()
    assert [h.name for h in store.list_heads(against_the_server.project_id)] == ["support-faqs"]
