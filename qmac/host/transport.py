"""Byte pipes between the host driver and a host link: the interface, and a serial port."""

__all__ = ["Transport", "SerialTransport"]


class Transport:
    """A bidirectional byte pipe to a host link (one UART). Subclasses implement both methods."""

    def write(self, data):
        """Send ``data`` (bytes) in order; may return before the last byte has left."""
        raise NotImplementedError

    def read(self, size, timeout):
        """Wait up to ``timeout`` seconds for received bytes; return between 1 and ``size`` of them in
        arrival order, or ``b""`` if none arrived in time."""
        raise NotImplementedError


class SerialTransport(Transport):
    """A serial port through pyserial, 8N1 at ``baud``, no flow control.

    Parameters
    ----------
    port : str
        Device name, e.g. ``/dev/ttyUSB1`` (the iCEBreaker's FTDI exposes the FPGA's UART as its second
        interface) or ``COM4``.
    baud : int
        Bit rate; must match the bitstream (``qmac bitstream --baud``).
    """

    def __init__(self, port, baud):
        import serial
        if not isinstance(baud, int) or baud <= 0:
            raise ValueError(f"baud must be a positive integer, not {baud!r}")
        self._serial = serial.Serial(port, baud, bytesize=8, parity="N", stopbits=1, timeout=0)
        self._serial.reset_input_buffer()

    def write(self, data):
        self._serial.write(data)

    def read(self, size, timeout):
        self._serial.timeout = timeout
        first = self._serial.read(1)
        if not first:
            return b""
        return first + self._serial.read(min(size - 1, self._serial.in_waiting))

    def close(self):
        self._serial.close()
