"""The host link: UART, SLIP framing and the command engine that drives a core from a serial port."""
