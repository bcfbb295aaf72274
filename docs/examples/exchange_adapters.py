"""Adapters for the example plan: a pretend exchange that prints instead of trading."""

from otel_execaudit import ActionOutcome, adapter


@adapter("fetch_quote")
def fetch_quote(context):
    return {"symbol": context.params["symbol"], "price": 50000}


def describe_order(context):
    params = context.params
    return f"{params['side']} {params['quantity']} {params['symbol']} at {params['price']}"


@adapter("place_order", simulate=describe_order)
def place_order(context):
    order_id = f"order-{context.execution_id[:8]}"
    context.side_effect("network", f"placed {describe_order(context)}", reversible=False,
                        order_id=order_id)
    return ActionOutcome.success("Order placed (pretend exchange)", order_id=order_id)
