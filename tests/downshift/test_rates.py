"""The rate card: token metrics priced per model in the one spend aggregation per tick (healers.downshift.rates),
checked against hand-computed totals for 10,000 tenants through LogsQueryClient and the Log Analytics stand-in."""
from __future__ import annotations

import datetime as dt
import random

import pytest

from healers.downshift import rates, spend
from healers.downshift.periods import period_at
from standins.kql_check import assert_valid_kql
from tests.downshift.test_shell_env import downshift_env, downshift_servers  # noqa: F401

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
CARD = rates.RateCard.from_config(rates.EXAMPLE)
WORKSPACE = "22222222-3333-4444-5555-666666666666"


def test_rate_card_validates_and_prices_per_1k_tokens():
    assert CARD.price("gpt-4o") == (0.0025, 0.01) and CARD.price("gpt-4o-mini") == (0.00015, 0.0006)
    assert CARD.cost("gpt-4o", 1000, 1000) == pytest.approx(0.0125)
    assert CARD.cost("gpt-4o-mini", 2_000_000, 500_000) == pytest.approx(0.3 + 0.3)
    assert CARD.cost("gpt-5", 1, 1) is None                               # no price: unknown, never zero
    for bad in ({"models": {}}, {"models": {"gpt-4o": {"input": -1, "output": 1}}}, {"models": {"x": 1}},
                {**rates.EXAMPLE, "per": 7}, {**rates.EXAMPLE, "surprise": 1},
                {**rates.EXAMPLE, "inputMetric": "Completion Tokens"}, {**rates.EXAMPLE, "currency": "usd"}):
        with pytest.raises(rates.RateCardError):
            rates.RateCard.from_config(bad)
    assert "1e-" not in rates.RateCard.from_config(
        {"models": {"m": {"input": 0.00001, "output": 2e-7}}}).kql_table()   # plain KQL real literals


def test_rate_card_spend_query_is_valid_kql_in_both_schemas():
    starts = [dt.datetime(2026, 3, 1, tzinfo=UTC), dt.datetime(2026, 2, 28, 11, tzinfo=UTC)]
    for schema in ("classic", "workspace"):
        assert_valid_kql({"apim": spend.spend_query(schema, "unused", "Subscription ID", starts, T0, ["apim"], CARD),
                          "app": spend.spend_query(schema, "unused", "tenant", starts[:1], T0, None, CARD)}, schema)


class Credential:
    def __init__(self, secret: str):
        self.secret = secret

    def get_token(self, *scopes, **kwargs):
        from azure.core.credentials import AccessToken

        from standins.tokens import mint
        token, exp = mint(self.secret, "https://api.loganalytics.io", object_id="test", app_id="test")
        return AccessToken(token, exp)


@pytest.mark.integration
def test_ten_thousand_tenants_priced_in_one_aggregation_match_hand_computed_totals(downshift_servers, local_azure,
                                                                                  monkeypatch):
    for k, v in local_azure.ca.env.items():
        monkeypatch.setenv(k, v)
    la = downshift_servers["la"]
    la.reset()
    rng = random.Random(15)
    # Published prices per 1K tokens (USD, as of 2026-12-02), written out by hand, not read from the card.
    hand_prices = {"gpt-4o": (0.0025, 0.01), "gpt-4o-mini": (0.00015, 0.0006)}
    start = period_at(T0).start_utc
    expected: dict[str, float] = {}
    rows: list[dict] = []
    for i in range(10_000):
        tenant = f"sub-{i:05d}"
        total = 0.0
        for model in ("gpt-4o", "gpt-4o-mini"):
            prompt, completion = rng.randint(0, 200_000), rng.randint(0, 50_000)
            when = T0 - dt.timedelta(hours=rng.uniform(0.2, 400))
            stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
            for name, tokens in (("Prompt Tokens", prompt), ("Completion Tokens", completion)):
                rows.append({"TimeGenerated": stamp, "Name": name, "Sum": tokens, "ItemCount": 1, "AppRoleName": "apim",
                             "Properties": {"Subscription ID": tenant, "model": model}})
            if when >= start:
                total += prompt / 1000 * hand_prices[model][0] + completion / 1000 * hand_prices[model][1]
        expected[tenant] = total
    # Total Tokens is not double counted; a model without a price makes its tenant unknown.
    stamp = (T0 - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    rows.append({"TimeGenerated": stamp, "Name": "Total Tokens", "Sum": 9e9, "ItemCount": 1, "AppRoleName": "apim",
                 "Properties": {"Subscription ID": "sub-00001", "model": "gpt-4o"}})
    rows.append({"TimeGenerated": stamp, "Name": "Prompt Tokens", "Sum": 10, "ItemCount": 1, "AppRoleName": "apim",
                 "Properties": {"Subscription ID": "sub-00002", "model": "gpt-5-preview"}})
    for at in range(0, len(rows), 5000):
        la.seed("AppMetrics", rows[at:at + 5000])
    la.set_now(T0)
    client = spend.make_client(la.endpoint, Credential(local_azure.secret))
    source = spend.Source("workspace", WORKSPACE, None, la.endpoint)
    before = la.stats()["round_trips"]
    result = spend.query_spend(client, source, "unused", "Subscription ID", [start], T0, ["apim"], CARD)
    assert result.round_trips == 1 and la.stats()["round_trips"] - before == 1
    period = period_at(T0)
    worst = 0.0
    for tenant, total in expected.items():
        obs = spend.observation(result, "apim", tenant, period, 1000.0)
        if tenant == "sub-00002":
            assert obs.spend is None                                           # unpriced tokens: unknown
            continue
        worst = max(worst, abs(obs.spend - total))
    assert worst < 1e-6, worst
    assert len(result.cells) == 10_000
    [q] = [q for q in la.queries() if q.get("name") == "downshift-spend"][-1:]
    assert "lookup kind=leftouter rates on model" in q["query"] and q["query"].count("AppMetrics") == 1


@pytest.mark.integration
def test_tick_downshifts_on_token_spend_priced_by_the_rate_card(downshift_env, monkeypatch):
    import json

    from healers.downshift import shell
    from shared.config import Settings
    from tests.downshift.test_shell_env import Clock, app_config, apply_env, drain, kv
    la, ac, clock = downshift_env["la"], downshift_env["ac"], Clock(T0)
    apply_env(monkeypatch, {"HEALER_DOWNSHIFT_APPS": json.dumps([app_config(ac.endpoint, rateCard=rates.EXAMPLE)])})
    stamp = (T0 - dt.timedelta(minutes=3)).strftime("%Y-%m-%dT%H:%M:%SZ")

    def tokens(tenant: str, name: str, n: int, model: str = "gpt-4o") -> dict:
        return {"TimeGenerated": stamp, "Name": name, "Sum": n, "ItemCount": 1, "AppRoleName": "chat-web",
                "Properties": {"tenant": tenant, "model": model}}
    # acme: 20M prompt + 3.5M completion tokens of gpt-4o = $50 + $35 = $85 of $100; globex: the same on mini = $5.1.
    la.seed("AppMetrics", [tokens("acme", "Prompt Tokens", 20_000_000), tokens("acme", "Completion Tokens", 3_500_000),
                           tokens("globex", "Prompt Tokens", 20_000_000, "gpt-4o-mini"),
                           tokens("globex", "Completion Tokens", 3_500_000, "gpt-4o-mini")])
    report = shell.tick(Settings(), owner="t", now=clock)
    assert report.round_trips == 1 and [p[1] for p in report.planned] == ["acme"]
    assert drain(downshift_env["env"], clock) == ["acted"] and kv(ac, "acme")["value"] == "gpt-4o-mini"
