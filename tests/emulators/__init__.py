"""Local stand-ins for services the tests cannot reach (Microsoft's identity platform, later
Graph): real HTTPS servers on loopback ports, answering as the documented services do."""
