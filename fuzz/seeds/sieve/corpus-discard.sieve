if header :contains "subject" "Undelivered" { discard; stop; }
if true { keep; }
