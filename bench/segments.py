"""The benchmark's segments: 50 lead segments and 10 account segments, each as a kenbun rule and the
SQL a person would write by hand for the same set (over `l` = app.leads, `a` = app.accounts)."""

LEADS = "app.leads_plain"
EVENTS = "app.events_plain"
ACCOUNTS = "app.accounts"


def f(field, op, value=None):
    r = {"field": field, "op": op}
    if value is not None:
        r["value"] = value
    return r


def lvl(op, tier):
    return {"level": "engagement", "op": op, "value": tier}


TIERS = [("Cold", 0, 25), ("Warm", 25, 50), ("Hot", 50, 75), ("On Fire", 75, None)]


def tier_sql(name):
    for n, lo, hi in TIERS:
        if n == name:
            return f"(l.score >= {lo}" + (f" AND l.score < {hi})" if hi is not None else ")")
    raise KeyError(name)


def lead_segments():
    s = []
    # 10 on plain columns
    for c in ["US", "CA", "GB", "DE", "FR"]:
        s.append((f"country {c}", f("country", "eq", c), f"l.country = '{c}'"))
    s.append(("title VP", f("title", "starts_with", "VP"), "l.title ILIKE 'VP%'"))
    s.append(("title Head", f("title", "starts_with", "Head"), "l.title ILIKE 'Head%'"))
    s.append(("vip", f("vip", "eq", True), "l.vip"))
    s.append(("score 50+", f("score", "gte", 50), "l.score >= 50"))
    s.append(("acme emails", f("email", "ends_with", "@acme.io"), "l.email ILIKE '%@acme.io'"))
    # 14 on JSON paths
    for p in ["free", "trial", "pro", "team"]:
        s.append((f"plan {p}", f("attributes.plan", "eq", p), f"l.attributes ->> 'plan' = '{p}'"))
    for src in ["ads", "organic", "referral", "event"]:
        s.append((f"source {src}", f("attributes.source", "eq", src), f"l.attributes ->> 'source' = '{src}'"))
    s.append(("newsletter", f("attributes.newsletter", "eq", True), "(l.attributes -> 'newsletter') = 'true'::jsonb"))
    for n in [5, 20, 40]:
        s.append((f"seats {n}+", f("attributes.seats", "gte", n), f"(l.attributes ->> 'seats')::numeric >= {n}"))
    s.append(("paid plan", f("attributes.plan", "in", ["pro", "team"]), "l.attributes ->> 'plan' IN ('pro', 'team')"))
    s.append(("ads or referral", f("attributes.source", "in", ["ads", "referral"]), "l.attributes ->> 'source' IN ('ads', 'referral')"))
    # 8 on levels (engagement over score)
    for n, _, _ in TIERS:
        s.append((f"level {n}", lvl("eq", n), tier_sql(n)))
    s.append(("warm or better", lvl("gte", "Warm"), "l.score >= 25"))
    s.append(("hot or better", lvl("gte", "Hot"), "l.score >= 50"))
    s.append(("cold only", lvl("lt", "Warm"), "(l.score >= 0 AND l.score < 25)"))
    s.append(("extremes", lvl("in", ["Cold", "On Fire"]), "((l.score >= 0 AND l.score < 25) OR l.score >= 75)"))
    # 8 on account properties
    for ind in ["SaaS", "Retail", "Fintech"]:
        s.append((f"at {ind}", {"account": f("industry", "eq", ind)},
                  f"EXISTS (SELECT 1 FROM {ACCOUNTS} a WHERE a.id = l.account_id AND a.industry = '{ind}')"))
    for n in [150, 1000]:
        s.append((f"at {n}+ employees", {"account": f("employees", "gte", n)},
                  f"EXISTS (SELECT 1 FROM {ACCOUNTS} a WHERE a.id = l.account_id AND a.employees >= {n})"))
    s.append(("at enterprise", {"account": f("plan", "eq", "enterprise")},
              f"EXISTS (SELECT 1 FROM {ACCOUNTS} a WHERE a.id = l.account_id AND a.plan = 'enterprise')"))
    s.append(("at big SaaS", {"account": {"all": [f("industry", "eq", "SaaS"), f("employees", "gte", 150)]}},
              f"EXISTS (SELECT 1 FROM {ACCOUNTS} a WHERE a.id = l.account_id AND a.industry = 'SaaS' AND a.employees >= 150)"))
    s.append(("at US account", {"account": f("country", "eq", "US")},
              f"EXISTS (SELECT 1 FROM {ACCOUNTS} a WHERE a.id = l.account_id AND a.country = 'US')"))

    # 7 on event counts within windows
    def ev(type_, within=None, where=None, op="gte", n=1):
        r = {"type": type_}
        if within:
            r["within"] = within
        if where:
            r["where"] = where
        if (op, n) != ("gte", 1):
            r["count"] = {"op": op, "value": n}
        return {"event": r}

    def ev_sql(type_, within=None, extra="", op=">=", n=1):
        w = f" AND e.occurred_at >= now() - interval '{within}'" if within else ""
        t = f" AND e.type = '{type_}'" if type_ else ""
        return f"(SELECT count(*) FROM {EVENTS} e WHERE e.lead_id = l.id{t}{w}{extra}) {op} {n}"

    s.append(("3 views this week", ev("page_view", "7 days", n=3), ev_sql("page_view", "7 days", n=3)))
    s.append(("pricing intent", ev("page_view", "30 days", f("metadata.url", "eq", "/pricing"), n=2),
              ev_sql("page_view", "30 days", " AND e.metadata ->> 'url' = '/pricing'", n=2)))
    s.append(("opened email", ev("email_open", "14 days"), ev_sql("email_open", "14 days")))
    s.append(("asked for demo", ev("demo_request"), ev_sql("demo_request")))
    s.append(("signed up this month", ev("signup", "30 days"), ev_sql("signup", "30 days")))
    s.append(("quiet this month", {"event": {"within": "30 days", "count": {"op": "eq", "value": 0}}},
              ev_sql(None, "30 days", op="=", n=0)))
    s.append(("clicked twice", ev("email_click", "90 days", n=2), ev_sql("email_click", "90 days", n=2)))
    # 3 segment-in-segment
    s.append(("hot US", {"all": [{"segment": "country US"}, {"segment": "hot or better"}]},
              "l.country = 'US' AND l.score >= 50"))
    s.append(("pro with pricing intent", {"all": [{"segment": "plan pro"}, {"segment": "pricing intent"}]},
              "l.attributes ->> 'plan' = 'pro' AND " + ev_sql("page_view", "30 days", " AND e.metadata ->> 'url' = '/pricing'", n=2)))
    s.append(("SaaS or enterprise", {"any": [{"segment": "at SaaS"}, {"segment": "at enterprise"}]},
              f"EXISTS (SELECT 1 FROM {ACCOUNTS} a WHERE a.id = l.account_id AND (a.industry = 'SaaS' OR a.plan = 'enterprise'))"))
    assert len(s) == 50, len(s)
    return s


def account_segments():
    def leads(where, where_sql, op="gte", n=1, sqlop=">="):
        r = {"leads": {}}
        if where is not None:
            r["leads"]["where"] = where
        if (op, n) != ("gte", 1):
            r["leads"]["count"] = {"op": op, "value": n}
        cond = f" AND {where_sql}" if where_sql else ""
        return r, f"(SELECT count(*) FROM {LEADS} l WHERE l.account_id = a.id{cond}) {sqlop} {n}"

    s = []
    for ind in ["SaaS", "Retail", "Fintech"]:
        s.append((f"accounts {ind}", f("industry", "eq", ind), f"a.industry = '{ind}'"))
    s.append(("accounts 1000+", f("employees", "gte", 1000), "a.employees >= 1000"))
    s.append(("accounts enterprise", f("plan", "eq", "enterprise"), "a.plan = 'enterprise'"))
    r, q = leads(None, None, n=25)
    s.append(("accounts 25+ leads", r, q))
    r, q = leads(lvl("gte", "Hot"), "l.score >= 50", n=8)
    s.append(("accounts 8+ hot leads", r, q))
    r, q = leads({"event": {"type": "demo_request"}},
                 f"EXISTS (SELECT 1 FROM {EVENTS} e WHERE e.lead_id = l.id AND e.type = 'demo_request')")
    s.append(("accounts asking for demos", r, q))
    r, q = leads(f("attributes.plan", "eq", "pro"), "l.attributes ->> 'plan' = 'pro'", n=5)
    s.append(("accounts 5+ pro leads", r, q))
    r, q = leads(f("country", "eq", "US"), "l.country = 'US'", n=5)
    s.append(("US-heavy SaaS", {"all": [f("industry", "eq", "SaaS"), r]}, f"a.industry = 'SaaS' AND {q}"))
    assert len(s) == 10
    return s
