//! Network namespace test harness (being written).
