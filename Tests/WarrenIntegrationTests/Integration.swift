import Testing

/// Every test that talks to the real servers lives under this suite: `.serialized` runs them one at
/// a time, because fault tests stop, freeze and restart the servers the others use.
@Suite(.serialized) struct Integration {}
