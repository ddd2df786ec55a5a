"""Who may open the dashboard; Streamlit-free, so the CLI (`cbir users`, `cbir serve --host`) and the dashboard
share one rule.

- policy: when a login is needed, which identity providers are configured, and when a session ends
- throttle: slowing down wrong passwords, per account name and per client address
- users: the local accounts (add, list, remove, check a login; argon2id hashes)
"""

__all__ = ["policy", "throttle", "users"]
