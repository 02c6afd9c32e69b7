require ["fileinto","imap4flags","copy","envelope","regex","vacation","relational","comparator-i;ascii-numeric","body","variables","date","mailbox"];
# rule:[Work]
if anyof (header :contains "subject" "Meeting", address :is "from" "bob@example.com")
{
	fileinto "Work";
	stop;
}
# rule:[Announcements]
if header :contains "list-id" "announce"
{
	fileinto :create "Lists/Announce";
	stop;
}
# rule:[Invoices]
if allof (header :matches "subject" "Invoice *", not header :contains "from" "paypal")
{
	fileinto :copy "Invoices";
	addflag "\\Flagged";
}
# rule:[Important]
if header :value "le" :comparator "i;ascii-numeric" "x-priority" "2"
{
	setflag "\\Flagged";
	keep;
}
