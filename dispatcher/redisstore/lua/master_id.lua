-- master_id returns masterID() (master.lua), for SettingsAdvice.
return masterID()
