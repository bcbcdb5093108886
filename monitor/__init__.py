"""hk-policy-monitor: watches Hong Kong's financial regulators and alerts on topic changes."""

__version__ = "0.1.0"
PROJECT_URL = "https://github.com/hk-policy-monitor/hk-policy-monitor"
