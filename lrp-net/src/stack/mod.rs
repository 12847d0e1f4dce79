//! Sockets over smoltcp with lazy receiver processing (being written).
