//! Golden tests: exact bytes in, exact bytes out.
