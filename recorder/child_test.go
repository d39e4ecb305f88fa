package recorder

// childEnv, when set in the environment of the test binary, makes it run
// as a recorder process (childMain) instead of running tests; its value is
// the JSON childConfig.
const childEnv = "KUZET_RECORDER_TEST_CHILD"
