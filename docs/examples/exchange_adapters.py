"""Adapters for the example plan: a pretend exchange that prints instead of trading."""

from otel_execaudit import ActionOutcome, adapter


@adapter("fetch_quote", read_only=True)  # it only reads: the one kind that runs in DRY_RUN
def fetch_quote(context):
    return {"symbol": context.params["symbol"], "price": 50000}


def describe_order(context):
    params = context.params
    return f"{params['side']} {params['quantity']} {params['symbol']} at {params['price']}"


def order_spend(params):
    """What an order counts against the daily limits, whatever a plan declares."""
    return {"orders": 1, "notional": params["quantity"] * params["price"]}


@adapter("place_order", simulate=describe_order, consumes=order_spend,
         side_effects=[{"category": "network", "reversible": False}])
def place_order(context):
    # The idempotency key is the same for every replay of this step: the exchange's client
    # order id, so that a replayed step cannot place a second order.
    order_id = f"order-{context.idempotency_key}"
    context.side_effect("network", f"placed {describe_order(context)}", reversible=False,
                        client_order_id=order_id)
    return ActionOutcome.success("Order placed (pretend exchange)", order_id=order_id)
