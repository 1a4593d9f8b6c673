"""Inventory planning: lead times from purchase orders, the inventory policy, the report."""

from sparecast.inventory.leadtime import LeadTimeResult, lead_time_stats

__all__ = ["LeadTimeResult", "lead_time_stats"]
