package batch

// Event types, as in Kubernetes events.
const (
	EventNormal  = "Normal"
	EventWarning = "Warning"
)

// Event reasons. The CronJob ones are those of the Kubernetes CronJob controller,
// so users searching for them find the Kubernetes documentation.
const (
	ReasonSuccessfulCreate    = "SuccessfulCreate"
	ReasonSuccessfulDelete    = "SuccessfulDelete"
	ReasonJobAlreadyActive    = "JobAlreadyActive"
	ReasonMissSchedule        = "MissSchedule"
	ReasonTooManyMissedTimes  = "TooManyMissedTimes"
	ReasonUnparseableSchedule = "UnparseableSchedule"
	ReasonSawCompletedJob     = "SawCompletedJob"

	ReasonCompleted            = "Completed"
	ReasonBackoffLimitExceeded = "BackoffLimitExceeded"
	ReasonDeadlineExceeded     = "DeadlineExceeded"
	ReasonSuperseded           = "Superseded"
	ReasonSuspended            = "Suspended"
	ReasonResumed              = "Resumed"
	ReasonTTLExpired           = "TTLExpired"
)

// Event is one transition worth telling a user about, attached to the object
// (CronJob or Job) whose decision produced it.
type Event struct {
	Type    string // EventNormal or EventWarning
	Reason  string
	Message string
}
