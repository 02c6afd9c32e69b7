require ["encoded-character","fileinto"];
if header :contains "subject" "${hex:4D 65}eting" { fileinto "hex"; }
if header :contains "subject" "${unicode:20AC}" { fileinto "euro"; }
if header :contains "subject" "${hex:zz}" { fileinto "bad-hex"; }
