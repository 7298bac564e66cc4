"""What a spec owns in the broker (its ownership record) and the lock apply and destroy hold."""
