"""A corpus of realistic but fake secrets (generated from a seeded RNG; none is real), each inside the kind of text
an exception message or a stack line carries. `corpus(n)` gives n (kind, secret, snippet) triples cycling over
every kind; the snippet contains the secret exactly as a leaky app would print it."""
from __future__ import annotations

import base64
import json
import random
import string
import uuid
from typing import Callable
from urllib.parse import quote

ALNUM = string.ascii_letters + string.digits
B64 = ALNUM + "+/"
URLSAFE = ALNUM + "-_"
HEX = "0123456789abcdef"


def _s(r: random.Random, alphabet: str, n: int) -> str:
    return "".join(r.choice(alphabet) for _ in range(n))


def _b64(r: random.Random, nbytes: int) -> str:
    return base64.b64encode(r.randbytes(nbytes)).decode()


def _pw(r: random.Random) -> str:
    return _s(r, ALNUM, 6) + r.choice("!#%^*-_") + _s(r, ALNUM, 5) + str(r.randint(10, 99))


def _jwt(r: random.Random) -> str:
    head = base64.urlsafe_b64encode(b'{"alg":"RS256","typ":"JWT"}').decode().rstrip("=")
    body = base64.urlsafe_b64encode(json.dumps({"sub": str(uuid.UUID(int=r.getrandbits(128))),
                                                "aud": "api://shop"}).encode()).decode().rstrip("=")
    return f"{head}.{body}.{_s(r, URLSAFE, 86)}"


Kind = Callable[[random.Random], tuple[str, str]]  # -> (secret, snippet)

KINDS: dict[str, Kind] = {
    "azure-storage-account-key": lambda r: (k := _b64(r, 64), f"DefaultEndpointsProtocol=https;AccountName=shopdata;"
                                                              f"AccountKey={k};EndpointSuffix=core.windows.net"),
    "cosmos-account-key": lambda r: (k := _b64(r, 64), f"AccountEndpoint=https://shop.documents.azure.com:443/;"
                                                       f"AccountKey={k};"),
    "service-bus-sas-key": lambda r: (k := _b64(r, 32), "Endpoint=sb://shop-bus.servicebus.windows.net/;"
                                                        f"SharedAccessKeyName=RootManageSharedAccessKey;"
                                                        f"SharedAccessKey={k}"),
    "blob-sas-signature": lambda r: (k := quote(_b64(r, 32), safe=""),
                                     "https://shopdata.blob.core.windows.net/img/a.png?sv=2022-11-02&ss=b&srt=o&sp=r"
                                     f"&se=2026-01-01T00:00:00Z&sig={k}"),
    "app-insights-connection-string": lambda r: (k := str(uuid.UUID(int=r.getrandbits(128))),
                                                 f"InstrumentationKey={k};IngestionEndpoint=https://westeurope-5.in."
                                                 "applicationinsights.azure.com/"),
    "functions-key-query": lambda r: (k := _s(r, URLSAFE, 54) + "==",
                                      f"POST https://shop-fn.azurewebsites.net/api/orders?code={k} returned 500"),
    "functions-key-header": lambda r: (k := _s(r, URLSAFE, 54) + "==", f"x-functions-key: {k}"),
    "cognitive-services-key": lambda r: (k := _s(r, HEX, 32), f"Ocp-Apim-Subscription-Key: {k}"),
    "azure-openai-api-key-json": lambda r: (k := _s(r, HEX, 32), f'request headers {{"api-key": "{k}"}}'),
    "azure-devops-pat": lambda r: (k := _s(r, "abcdefghijklmnopqrstuvwxyz234567", 52),
                                   f"TF400813: access denied for personal access token {k}"),
    "azure-devops-pat-url": lambda r: (k := _s(r, "abcdefghijklmnopqrstuvwxyz234567", 52),
                                       f"git clone https://build:{k}@dev.azure.com/contoso/shop/_git/shop failed"),
    "basic-auth-header": lambda r: (k := base64.b64encode(f"svc-orders:{_pw(r)}".encode()).decode(),
                                    f"Authorization: Basic {k}"),
    "basic-auth-json-header": lambda r: (k := base64.b64encode(f"svc-bill:{_pw(r)}".encode()).decode(),
                                         f'headers={{"Authorization": "Basic {k}"}}'),
    "bearer-jwt": lambda r: (k := _jwt(r), f"Authorization: Bearer {k}"),
    "docker-config-auth": lambda r: (k := base64.b64encode(f"shopacr:{_s(r, B64, 40)}".encode()).decode(),
                                     f'{{"auths": {{"shopacr.azurecr.io": {{"auth": "{k}"}}}}}}'),
    "entra-client-secret": lambda r: (k := _s(r, ALNUM, 3) + str(r.randint(0, 9)) + "Q~" + _s(r, ALNUM + "~.-_", 34),
                                      f"AADSTS7000215: Invalid client secret provided ({k})"),
    "entra-client-secret-kv": lambda r: (k := _s(r, ALNUM, 3) + "8Q~" + _s(r, ALNUM, 34),
                                         f"token request client_id=web&client_secret={k}&grant_type=client_credentials"),
    "google-api-key": lambda r: (k := "AIza" + _s(r, URLSAFE, 35), f"maps geocode failed key={k}"),
    "mailgun-api-key": lambda r: (k := "key-" + _s(r, HEX, 32), f"mailgun send failed with api key {k}"),
    "sendgrid-api-key": lambda r: (k := "SG." + _s(r, URLSAFE, 22) + "." + _s(r, URLSAFE, 43),
                                   f"SendGrid 401 using {k}"),
    "stripe-secret-key": lambda r: (k := "sk_live_" + _s(r, ALNUM, 24), f"stripe.error.AuthenticationError: {k}"),
    "stripe-restricted-key": lambda r: (k := "rk_live_" + _s(r, ALNUM, 24), f"charge failed api_key: {k}"),
    "twilio-api-key": lambda r: (k := "SK" + _s(r, HEX, 32), f"Twilio auth failed for {k}"),
    "twilio-auth-token": lambda r: (k := _s(r, HEX, 32), f"TWILIO_AUTH_TOKEN={k}"),
    "npm-token": lambda r: (k := "npm_" + _s(r, ALNUM, 36), f"npm ERR! 401 token {k}"),
    "npmrc-auth-token": lambda r: (k := str(uuid.UUID(int=r.getrandbits(128))),
                                   f"//registry.npmjs.org/:_authToken={k}"),
    "upper-snake-password": lambda r: (k := _pw(r), f"env DB_PASSWORD={k} rejected"),
    "upper-snake-access-key": lambda r: (k := _b64(r, 32), f"REDIS_ACCESS_KEY={k}"),
    "underscore-private-key-name": lambda r: (k := _s(r, ALNUM, 28), f"    self._api_key = '{k}'"),
    "underscore-secret": lambda r: (k := _s(r, ALNUM, 20) + "9", f"config _secret: {k}"),
    "json-string-password": lambda r: (k := _pw(r), f"    payload = json.loads('{{\"password\": \"{k}\", \"user\": \"svc\"}}')"),
    "json-string-spaced-password": lambda r: (k := f"correct horse {r.randint(100, 999)} staple",
                                              f'body {{"user": "ops", "password": "{k}"}}'),
    "github-token": lambda r: (k := "ghp_" + _s(r, ALNUM, 36), f"git push rejected: token {k}"),
    "github-fine-grained-pat": lambda r: (k := "github_pat_" + _s(r, ALNUM, 22) + "_" + _s(r, ALNUM, 59),
                                          f"GITHUB_TOKEN={k}"),
    "openai-api-key": lambda r: (k := "sk-proj-" + _s(r, URLSAFE, 48), f"openai.AuthenticationError: key {k}"),
    "aws-access-key-id": lambda r: (k := "AKIA" + _s(r, string.ascii_uppercase + string.digits, 16),
                                    f"boto3 InvalidClientTokenId {k}"),
    "aws-secret-access-key": lambda r: (k := _s(r, B64, 40), f"aws_secret_access_key={k}"),
    "slack-bot-token": lambda r: (k := f"xoxb-{r.randint(10**11, 10**12)}-{r.randint(10**11, 10**12)}-"
                                       + _s(r, ALNUM, 24), f"slack post failed {k}"),
    "private-key-pem": lambda r: (k := _b64(r, 48), f"-----BEGIN RSA PRIVATE KEY-----\\n{k}\\n-----END RSA PRIVATE "
                                                    "KEY-----"),
    "postgres-url": lambda r: (k := _pw(r), f"postgresql://shop_admin:{k}@db.internal:5432/shop unreachable"),
    "redis-url": lambda r: (k := _s(r, ALNUM, 32), f"rediss://:{k}@shop-cache.redis.cache.windows.net:6380/0"),
    "redis-connection-string": lambda r: (k := _b64(r, 32), f"shop-cache.redis.cache.windows.net:6380,password={k},"
                                                            "ssl=True,abortConnect=False"),
    "sql-connection-password": lambda r: (k := _pw(r), "Server=tcp:shop.database.windows.net,1433;User ID=app;"
                                                       f"Password={k};Encrypt=True"),
    "gitlab-token": lambda r: (k := "glpat-" + _s(r, URLSAFE, 20), f"gitlab 401 for {k}"),
    "pypi-token": lambda r: (k := "pypi-AgEIcHlwaS5vcmc" + _s(r, URLSAFE, 80), f"twine upload: {k}"),
    "telegram-bot-token": lambda r: (k := f"{r.randint(10**8, 10**9 - 1)}:" + _s(r, URLSAFE, 35),
                                     f"telegram sendMessage https://api.telegram.org/bot{k}/sendMessage"),
}


def corpus(n: int, seed: int = 10) -> list[tuple[str, str, str]]:
    r = random.Random(seed)
    names = sorted(KINDS)
    return [(names[i % len(names)], *KINDS[names[i % len(names)]](r)) for i in range(n)]
