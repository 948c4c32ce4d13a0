"""What tests share: servers, workers, clients and tools driven from a test."""
