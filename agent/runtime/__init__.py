"""Container runtimes behind one contract (see ``agent.runtime.base``)."""
