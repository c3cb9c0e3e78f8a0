"""The Azure Function: DPS's custom allocation webhook, and a health probe.

Only HTTP translation lives here; every decision is made by ``allocation.webhook``.
"""

import azure.functions as func

from allocation import webhook

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


def _http(response: webhook.WebhookResponse) -> func.HttpResponse:
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-type"}
    return func.HttpResponse(
        body=response.body_bytes(),
        status_code=response.status,
        headers=headers,
        mimetype="application/json",
        charset="utf-8",
    )


@app.function_name("allocate")
@app.route(route="allocate", methods=[func.HttpMethod.POST])
def allocate(req: func.HttpRequest) -> func.HttpResponse:
    return _http(webhook.handle(req.get_body()))


@app.function_name("health")
@app.route(route="health", methods=[func.HttpMethod.GET], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    return _http(webhook.health())
