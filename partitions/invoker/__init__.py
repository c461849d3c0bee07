"""Running attempts against services: the invoker, streaming attempts, embedded apps, the attempt's
output, and the HTTP/2 (h2c) client and its frames."""
