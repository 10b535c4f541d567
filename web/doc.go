// Package web will hold gantry's embedded UI assets and their HTTP handlers.
// It has no code yet: the UI arrives with a later issue.
package web
