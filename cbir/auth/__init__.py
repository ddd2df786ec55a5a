"""Who may open the dashboard: local accounts with argon2 hashes (users), slowed-down wrong passwords
(throttle), and the rule of when a login is needed and which OIDC providers st.login can use (policy).

Streamlit-free, so the CLI (`cbir users`, `cbir serve --host`) and the dashboard share one rule.
"""
