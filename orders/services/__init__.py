"""Order services: the only code that changes orders (views, tasks and the loop call these).

- placement: `place_single_order`, `place_bracket_order`, `place_batch`
- changes: `modify_order`, `cancel_order`, `reprice_leg`
- kill_switch (not re-exported: the module shares the function's name): `kill_switch`
- sync (monitoring steps 1 and 3): `store_broker_snapshots`, `sync_account_orders`,
  `reconcile_pending_legs`
- protection (monitoring step 4): `place_protective_legs`
- regeneration (monitoring steps 7-9): archive, stage and re-place rejected orders

What they share, one module per job:
- lifecycle: the one gate for every change of a leg's status (the table itself is
  orders.domain.lifecycle); `lock_legs`, `apply_leg_event`
- account_lock: the order in which a transaction locks an account's rows (the account row
  first) and what each writer takes; `lock_account_row`
- broker_calls: the one path to send legs and record the answers (`submit_legs`), and
  the modify and cancel calls
- audit: OrderEvent rows and the owner's order_update after commit (`record_change`)
- bulk_update: many rows in one UPDATE; identifiers: the daily counter
"""

from orders.services.changes import cancel_order, modify_order, reprice_leg
from orders.services.placement import (
    MAX_BATCH_ITEMS,
    BatchItemError,
    BatchItemResult,
    PlacementResult,
    place_batch,
    place_bracket_order,
    place_single_order,
    request_fingerprint,
)
from orders.services.protection import (
    ProtectionResult,
    ProtectiveLegsIncomplete,
    brackets_to_protect,
    brackets_to_protect_and_short,
    place_protective_legs,
    plan_exits,
)
from orders.services.sync import (
    reconcile_pending_legs,
    roll_up_orders,
    store_broker_snapshots,
    sync_account_orders,
)

__all__ = [
    "MAX_BATCH_ITEMS",
    "BatchItemError",
    "BatchItemResult",
    "PlacementResult",
    "ProtectionResult",
    "ProtectiveLegsIncomplete",
    "brackets_to_protect",
    "brackets_to_protect_and_short",
    "cancel_order",
    "modify_order",
    "place_batch",
    "place_bracket_order",
    "place_protective_legs",
    "place_single_order",
    "plan_exits",
    "reconcile_pending_legs",
    "reprice_leg",
    "request_fingerprint",
    "roll_up_orders",
    "store_broker_snapshots",
    "sync_account_orders",
]
