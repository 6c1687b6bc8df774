"""wm_agents: LangGraph agents that imagine before they act."""
