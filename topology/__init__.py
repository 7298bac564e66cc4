"""rabbitform topology: plan and apply RabbitMQ event-bus topology from a declarative spec."""

__version__ = "0.1.0"
