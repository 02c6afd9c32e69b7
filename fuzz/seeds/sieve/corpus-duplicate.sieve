require ["duplicate","fileinto"];
if duplicate { discard; stop; }
if duplicate :header "subject" :handle "subj" :seconds 3600 { fileinto "dup-subject"; }
if duplicate :uniqueid "fixed" { fileinto "dup-fixed"; }
