//! AF_XDP layer (being written).
