package recorder

const childEnv = "KUZET_RECORDER_TEST_CHILD"

func childMain() int { return 2 }
