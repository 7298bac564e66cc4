"""`rabbitform doctor`: what RabbitMQ 4.x refuses, drops or changes on a broker."""
