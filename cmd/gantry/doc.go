// Command gantry is the single gantry binary: the CLI verbs (validate, plan, get, …)
// and the long-running processes (up, server, agent). It owns flags, wiring and process
// lifecycle; behaviour lives in the packages it wires together.
package main
